"""The website widget (docs/widget.md): the script a host site includes, the
chat page it frames, and the way from that frame to Parley's own chat page.

- ``GET /widget.js``: the host page's one script, at a stable address. It is
  the collected, content-hashed static file (``web/embed/widget.js``; the
  source in development), served with a five-minute cache and its hash as
  ETag, so a deploy reaches every host site within minutes while repeat
  page loads revalidate for free. Any site may load it (CORS ``*``, CORP
  ``cross-origin``); it carries no secret.
- ``GET /widget/frame/``: the chat in the iframe. The one page of Parley's
  that may be framed, and only by ``PARLEY_WIDGET_ORIGINS``
  (``frame-ancestors``; no ``X-Frame-Options``, which cannot name origins).
  Otherwise as strict as every page. It sets and reads no cookie: who it
  speaks for comes by postMessage and lives in the frame (widget-frame.js).
- ``POST /widget/open/``: "Open in a new window" and "Get notifications".
  A browser never lets a frame of another site ask for notification
  permission, so the frame posts its token here from a new window (in the
  body, never a URL) and this page signs that window in with the chat
  page's cookie. That cookie names a pop-out session (accounts.popouts) and
  stands only while it does: the frame cannot clear a cookie of Parley's
  own, so its logout signs such windows out on the server
  (``POST /api/v1/widget/logout``).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from accounts.popouts import popout_open
from accounts.tokens import InvalidCustomerToken, verify_customer_token
from web.identity import remember_customer
from web.security import content_security_policy, page_headers
from web.views import visitor_signup_enabled

#: The host page's script, as a static file (collected and hashed in production).
WIDGET_SCRIPT = "web/embed/widget.js"
#: How long a browser (or a CDN) may keep /widget.js before asking again.
SCRIPT_MAX_AGE = 300


@dataclass(frozen=True)
class Script:
    raw: bytes
    gzipped: bytes
    etag: str


def built_script() -> Path:
    """The widget script as this deployment serves it: collectstatic's hashed
    copy in production, the source in development (PARLEY_DEBUG)."""
    storage = staticfiles_storage
    if isinstance(storage, ManifestFilesMixin):
        return Path(storage.path(storage.stored_name(WIDGET_SCRIPT)))
    found = finders.find(WIDGET_SCRIPT)
    if not found:
        raise FileNotFoundError(WIDGET_SCRIPT)
    return Path(found if isinstance(found, str) else found[0])


@lru_cache(maxsize=4)
def _script(path: Path, mtime: float) -> Script:
    raw = path.read_bytes()
    return Script(raw, gzip.compress(raw, 9, mtime=0), '"' + hashlib.sha256(raw).hexdigest()[:20] + '"')


@require_safe
def widget_js(request: HttpRequest) -> HttpResponse:
    path = built_script()
    script = _script(path, path.stat().st_mtime)
    response: HttpResponse
    if script.etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
    else:
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
        response = HttpResponse(script.gzipped if gzipped else script.raw, content_type="text/javascript; charset=utf-8")
        if gzipped:
            response["Content-Encoding"] = "gzip"
    response["ETag"] = script.etag
    response["Cache-Control"] = f"public, max-age={SCRIPT_MAX_AGE}"
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


@require_safe
@never_cache
@xframe_options_exempt
def widget_frame(request: HttpRequest) -> HttpResponse:
    """The chat in the host page's iframe. With no PARLEY_WIDGET_ORIGINS no
    site may frame it (``frame-ancestors 'none'``) and widget.js says why."""
    origins = list(settings.PARLEY_WIDGET_ORIGINS)
    config = {"origins": origins, "socketPath": "/ws/v1/", "signup": visitor_signup_enabled()}
    response = render(request, "web/widget_frame.html", {"config": config})
    # blob: for attachments, which the frame fetches with its token (no cookie to load them by URL).
    response["Content-Security-Policy"] = content_security_policy(request, frame_ancestors=origins, img_src=["blob:"])
    response["Referrer-Policy"] = "same-origin"
    return response


def _from_parley(request: HttpRequest) -> bool:
    """Whether this request was sent by one of Parley's own pages (the widget's
    frame), as the browser tells: ``Origin`` is this very origin and, where the
    browser sends it, ``Sec-Fetch-Site`` says same-origin. A page can set
    neither, so another site cannot post a token here to switch a visitor
    into a conversation of its choosing (the chat link's attack)."""
    origin = request.headers.get("Origin", "")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        return False
    parts = urlsplit(origin)
    return bool(origin) and f"{parts.scheme}://{parts.netloc}" == origin and (
        parts.scheme == request.scheme and parts.netloc == request.get_host()
    )


@require_POST
@csrf_exempt  # no cookie authenticates this request (the token in its body does); _from_parley checks who sent it
@never_cache
@page_headers
def widget_open(request: HttpRequest) -> HttpResponse:
    """A new window of Parley's own, signed in as the widget's customer."""
    if not _from_parley(request):
        response = render(request, "web/widget_open_refused.html", status=403)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    token = request.POST.get("token", "")
    try:
        customer_id = verify_customer_token(token)
    except InvalidCustomerToken as err:
        response = render(request, "web/chat_link_invalid.html",
                          {"expired": err.code == "token_expired", "signup": visitor_signup_enabled()}, status=403)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    target = reverse("web:chat")
    if request.GET.get("next") == "notifications":
        target += "#notifications"
    response = HttpResponseRedirect(target)
    response.headers["Referrer-Policy"] = "no-referrer"
    remember_customer(response, token=token, popout=popout_open(customer_id=customer_id))
    return response
