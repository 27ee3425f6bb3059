"""The customer cookie of the chat page: exchanging a token for it, reading it back.

A host application links to ``/chat/?token=<customer token>``; the page
swaps the token for the signed, HttpOnly cookie that the API and the socket
accept (accounts.principals), so the token leaves the address bar at once.
A window the website widget opened (web.widget) gets a cookie that also
names its pop-out session (accounts.popouts), and stands while that does.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from accounts.popouts import popout_leave
from accounts.principals import CUSTOMER_COOKIE, customer_cookie_value, principal_from_cookies
from accounts.tokens import issue_customer_token
from notifications.subscriptions import subscriptions_delete


def remember_customer(response: HttpResponse, *, token: str, popout: str = "") -> None:
    """Store ``token`` (already verified) in the chat page's cookie, bound to
    the pop-out session of key ``popout`` if given.

    Secure exactly when the session cookie is (PARLEY_HTTPS, on unless
    PARLEY_DEBUG is), so a customer's identity never travels over plain http.
    """
    response.set_cookie(
        CUSTOMER_COOKIE,
        customer_cookie_value(token, popout=popout),
        max_age=settings.CUSTOMER_TOKEN_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def remember_new_customer(response: HttpResponse, *, customer_id: uuid.UUID) -> None:
    remember_customer(response, token=issue_customer_token(customer_id))


def forget_customer(response: HttpResponse) -> None:
    response.delete_cookie(CUSTOMER_COOKIE, samesite="Lax")


def leave_popout(request: HttpRequest) -> None:
    """If this browser's cookie names a pop-out session, end it and delete the
    push subscriptions made in that window (as the widget's logout does for all of them)."""
    raw = request.COOKIES.get(CUSTOMER_COOKIE)
    principal = principal_from_cookies({CUSTOMER_COOKIE: raw}, None) if raw else None
    if principal is None or principal.credential is None or principal.credential.kind != "popout":
        return
    with transaction.atomic():
        subscriptions = popout_leave(session_id=principal.credential.key)
        subscriptions_delete(customer_id=principal.customer_id, subscription_ids=subscriptions)


def cookie_customer_id(request: HttpRequest) -> uuid.UUID | None:
    """The customer the chat cookie names, if it is present and still valid.

    Read without looking at the agent session: the chat page is the
    customer's whoever else is logged in to this browser.
    """
    raw = request.COOKIES.get(CUSTOMER_COOKIE)
    if not raw:
        return None
    principal = principal_from_cookies({CUSTOMER_COOKIE: raw}, None)
    return principal.customer_id if principal is not None else None
