"""The page that proves an address a visitor typed (the confirmation email's link).

``/email/verify/<token>/``: GET shows a button and changes nothing (link
scanners and previews follow every link); POST (with the page's CSRF token)
records ``EmailVerified``, but only in the browser that holds the
conversation the token names (its chat cookie): proving the address then
also proves that whoever holds the mailbox started this conversation. Any
other browser is told to open the link where it chats, and nothing is
recorded; the page never signs anyone in.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from customers.services import CustomerError, customer_verify_email
from notifications.verification import InvalidVerifyToken, verify_verify_token
from web.identity import cookie_customer_id
from web.security import page_headers

TEMPLATE = "web/email_verify.html"


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@page_headers
def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    try:
        claim = verify_verify_token(token)
    except InvalidVerifyToken:
        return _no_referrer(render(request, TEMPLATE, {"invalid": True}, status=404))
    if request.method != "POST":
        return _no_referrer(render(request, TEMPLATE, {"email": claim.email, "token": token}))
    if cookie_customer_id(request) != claim.customer_id:
        # Not the browser of this conversation: a stranger who received the email proves nothing by it.
        return _no_referrer(render(request, TEMPLATE, {"elsewhere": True}, status=403))
    try:
        customer_verify_email(customer_id=claim.customer_id, email=claim.email)
    except CustomerError:  # the customer is gone, or the address changed since
        return _no_referrer(render(request, TEMPLATE, {"invalid": True}, status=404))
    return _no_referrer(render(request, TEMPLATE, {"email": claim.email, "done": True}))


def _no_referrer(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: no page it links to may learn it.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
