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
from django.http import HttpRequest, HttpResponse

from accounts.principals import CUSTOMER_COOKIE, customer_cookie_value, principal_from_cookies
from accounts.tokens import issue_customer_token


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
