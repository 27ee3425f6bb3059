"""The unsubscribe page of the email fallback's emails.

``/email/unsubscribe/<token>/``: GET shows what would happen and a button;
POST unsubscribes. The POST needs no CSRF token: mail clients send it
themselves for the one-click unsubscribe of RFC 8058 (``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``), and the signed token in the URL is what
authorises it (only someone holding an email sent to that address has it).
A GET never unsubscribes: link scanners and previews follow every link.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from customers.services import CustomerNotFound, customer_unsubscribe_email
from notifications.unsubscribe import InvalidUnsubscribeToken, verify_unsubscribe_token
from web.security import page_headers


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@page_headers
def email_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        wish = verify_unsubscribe_token(token)
    except InvalidUnsubscribeToken:
        return _no_referrer(render(request, "web/email_unsubscribe.html", {"invalid": True}, status=404))
    if request.method != "POST":
        return _no_referrer(render(request, "web/email_unsubscribe.html", {"email": wish.email, "token": token}))
    try:
        customer_unsubscribe_email(customer_id=wish.customer_id, email=wish.email)
    except CustomerNotFound:
        pass  # nobody left to email: the wish is granted either way
    return _no_referrer(render(request, "web/email_unsubscribe.html", {"email": wish.email, "done": True}))


def _no_referrer(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: no page it links to may learn it.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
