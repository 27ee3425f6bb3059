"""The website widget's endpoints: its settings, a visitor's sign-up, who a
customer token speaks for, and signing out the windows the widget opened.

The widget (docs/widget.md) is Parley's chat in an iframe on a host site.
That frame holds no cookie: a browser that blocks third-party cookies would
drop it, and a cookie would need CSRF protection. It authenticates every
call with a customer token in the ``Authorization`` header, which it got
from the host page (``Parley("boot", {token})``: the host's server asked
``POST /api/v1/customers`` for it) or from the visitor sign-up below.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts import presence, ratelimit
from accounts.errors import RateLimited
from accounts.popouts import popout_sign_out
from accounts.principals import Principal
from accounts.tokens import issue_customer_token
from api.errors import ApiError
from api.http import api, doc, field_str, json_body
from conversations.away import away_status, business_hours
from customers.services import CustomerNotFound, customer_get, customer_register
from notifications.subscriptions import subscriptions_delete

SIGNUP_DISABLED = (404, "visitor_signup_disabled")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def widget_settings_body() -> dict[str, object]:
    """What the launcher and the widget's header show, from the settings (docs/widget.md)."""
    return {
        "name": settings.PARLEY_WIDGET_NAME,
        "greeting": settings.PARLEY_WIDGET_GREETING,
        "color": settings.PARLEY_WIDGET_COLOR,
        "online": bool(presence.online_agents()),
        "business_hours": away_status(business_hours(), _now()),
        "reply_time": settings.PARLEY_WIDGET_REPLY_TIME or None,
        "visitor_signup": bool(settings.PARLEY_VISITOR_SIGNUP),
        "origins": list(settings.PARLEY_WIDGET_ORIGINS),
    }


@api(["GET"], None)
@doc("GET", "The website widget's settings", operation_id="getWidgetSettings", responses={200: "WidgetSettings"}, security=[],
     description="No authentication, readable from any origin (CORS `*`, no credentials): the widget script on a "
     "host page reads it to draw the launcher and to say in the console when the page's origin is not one of "
     "`origins` (`PARLEY_WIDGET_ORIGINS`). `online` is true while an agent has the dashboard open.")
def widget(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(widget_settings_body())
    # Public facts, no cookie read: any page may read them. Not cached, so
    # that `online` is current whenever the widget asks.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "no-cache"
    return response


@api(["POST"], None)
@doc("POST", "Start a conversation as a visitor (the widget's pre-chat form)", operation_id="signUpVisitor", body="VisitorSignup",
     responses={201: "CustomerToken"}, security=[],
     errors=[SIGNUP_DISABLED, (400, "invalid_name"), (400, "invalid_email"), RateLimited],
     description="The website widget's form for visitors the host site did not sign in: a name and an email "
     "register a new customer (their contact details say the visitor gave them) and answer a customer token, "
     "which the widget keeps in its own storage. The same budget as the chat page's form: "
     "`PARLEY_VISITOR_SIGNUPS_PER_HOUR` per client address, both together; past it 429 `rate_limited` with "
     "`Retry-After`. No cookie is read or set, so there is nothing for another site to forge (and a JSON body "
     "cannot be posted across origins without a CORS preflight, which this endpoint does not answer). "
     "404 `visitor_signup_disabled` when `PARLEY_VISITOR_SIGNUP` is off.")
def visitors(request: HttpRequest) -> JsonResponse:
    if not settings.PARLEY_VISITOR_SIGNUP:
        raise ApiError(*SIGNUP_DISABLED, "visitors cannot start conversations here; sign in on the site")
    data = json_body(request)
    name = (field_str(data, "name", max_length=200) or "").strip()
    email = (field_str(data, "email", max_length=254) or "").strip()
    # Checked before the budget is charged, as the page's form does: a typo
    # must not cost a visitor one of their sign-ups.
    if not name:
        raise ApiError(400, "invalid_name", "give your name (1 to 200 characters)")
    try:
        validate_email(email)
    except ValidationError:
        raise ApiError(400, "invalid_email", "give an email address we can answer at") from None
    verdict = ratelimit.hit(
        "signup", ratelimit.client_bucket(request), limit=settings.PARLEY_VISITOR_SIGNUPS_PER_HOUR, window=3600
    )
    if not verdict.allowed:
        raise RateLimited("too many new conversations from this address; try again later",
                          retry_after=verdict.retry_after)
    registration = customer_register(name=name, email=email, actor="visitor")
    customer_id = registration.customer.id
    return JsonResponse({"customer_id": str(customer_id), "token": issue_customer_token(customer_id)}, status=201)


@api(["GET"], "customer")
@doc("GET", "The customer a token speaks for (the widget's identity check)", operation_id="getWidgetIdentity", responses={200: "WidgetIdentity"},
     errors=[CustomerNotFound],
     description="The widget asks it first with the token it was handed: 200 names the customer (the chat shows "
     "their name); 401 `invalid_token` or `token_expired` makes it ask the visitor to reload or sign in again.")
def me(request: HttpRequest, principal: Principal) -> JsonResponse:
    customer = customer_get(customer_id=principal.customer_id)
    return JsonResponse({"customer_id": str(customer.id), "name": customer.name, "email": customer.email})


@api(["POST"], "customer")
@doc("POST", "Sign out the windows the widget opened (the widget's logout)", operation_id="logOutWidget",
     responses={204: None},
     description="The widget's `logout` calls it with the customer's token before it forgets them. *Open in a new "
     "window* and *Get notifications* sign a window of Parley's own in with the chat page's cookie, which the "
     "widget's frame (on another site) cannot clear: this signs every such window of the customer out (its "
     "cookie no longer stands: `/chat/` there shows the pre-chat form, its socket closes with 4401) and deletes "
     "the push subscriptions registered from them. The customer's other devices and their `/chat/` pages "
     "signed in by a link stay signed in. 204 also when there was nothing to sign out.")
def logout(request: HttpRequest, principal: Principal) -> HttpResponse:
    with transaction.atomic():
        subscriptions = popout_sign_out(customer_id=principal.customer_id)
        subscriptions_delete(customer_id=principal.customer_id, subscription_ids=subscriptions)
    return HttpResponse(status=204)
