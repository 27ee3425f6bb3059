"""Response headers for the pages: a strict Content-Security-Policy.

Message bodies are only ever written with textContent; the policy is the
second line of defence: no inline script, no foreign origin, no framing.
The one page that may be framed, the website widget's (web.widget), names
the host sites allowed to frame it and changes nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse


def content_security_policy(
    request: HttpRequest, *, frame_ancestors: Sequence[str] = (), img_src: Sequence[str] = ()
) -> str:
    """The pages' policy. ``frame_ancestors``: the origins that may frame the
    page (none: nobody). ``img_src``: sources beyond this origin and ``data:``
    (the widget shows attachments it fetched with its token as ``blob:``)."""
    host = request.get_host()
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            " ".join(["img-src 'self' data:", *img_src]),
            "font-src 'self'",
            f"connect-src 'self' ws://{host} wss://{host}",
            "manifest-src 'self'",
            "worker-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors " + (" ".join(frame_ancestors) if frame_ancestors else "'none'"),
        ]
    )


def page_headers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Add the CSP and a referrer policy to an HTML page view."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request))
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return wrapper
