"""The browser sign-in forms, throttled as the API's sign-in is (accounts.throttle).

``/accounts/login/`` is Django's LoginView with ``LoginForm``; ``/admin/login/``
is the admin's own view with ``AdminLoginForm`` (project.urls installs it as
``admin.site.login_form``). Both forms ask the throttle before they check a
password; a refusal is a form error saying how long to wait, and
``refusals_as_429`` turns the page that shows it into a ``429`` with
``Retry-After``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponseBase
from django.template.response import SimpleTemplateResponse

from accounts import ratelimit, throttle
from accounts.errors import TooManyAttempts


def wait_in_words(seconds: int) -> str:
    """``45 seconds``, ``1 minute``, ``15 minutes`` (rounded up)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class ThrottledSignIn(forms.Form):
    """Mixed in before an AuthenticationForm: the throttle decides whether its clean() may check the password."""

    request: HttpRequest | None
    retry_after: int | None = None  # set when the throttle refused: seconds to wait

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:  # nothing will be checked: the fields' own errors say why
            super().clean()
            return self.cleaned_data
        address = ratelimit.client_ip(self.request) if self.request is not None else "unknown"
        try:
            attempt = throttle.begin(address, username)
        except TooManyAttempts as refused:
            self.retry_after = refused.retry_after
            raise forms.ValidationError(
                "Too many failed sign-in attempts. Please wait %(wait)s, then try again.",
                code="too_many_attempts", params={"wait": wait_in_words(refused.retry_after)},
            ) from None
        try:
            super().clean()
        except forms.ValidationError:  # wrong password, unknown or inactive user, not staff (admin)
            attempt.failed()
            raise
        except BaseException:
            attempt.abandoned()
            raise
        attempt.succeeded()
        return self.cleaned_data


class LoginForm(ThrottledSignIn, AuthenticationForm):
    """``/accounts/login/``."""


class AdminLoginForm(ThrottledSignIn, AdminAuthenticationForm):
    """``/admin/login/`` (staff only, as the admin's own form)."""


def refusals_as_429(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wrap a sign-in view: a page whose form the throttle refused answers 429 with Retry-After."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if isinstance(response, SimpleTemplateResponse) and response.context_data:
            retry_after = getattr(response.context_data.get("form"), "retry_after", None)
            if retry_after:
                response.status_code = 429
                response["Retry-After"] = str(retry_after)
        return response

    return wrapper
