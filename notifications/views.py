"""HTTP adapter for push: the VAPID public key, subscriptions, and the service worker.

Rules live in ``notifications.subscriptions``; these views only translate.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from accounts.principals import Principal
from notifications.subscriptions import (
    SubscriptionError,
    subscription_delete,
    subscription_register,
)
from notifications.vapid import InvalidKey, public_key_of
from project.http import ApiError, api, field_str, json_body

SERVICE_WORKER = Path(__file__).resolve().parent / "static" / "notifications" / "sw.js"


def _public_key() -> str:
    if not settings.VAPID_PRIVATE_KEY:
        raise ApiError(404, "push_not_configured", "this server has no VAPID keys; push is off")
    try:
        # Derived from the private key, so it always matches what signs the pushes.
        return public_key_of(settings.VAPID_PRIVATE_KEY)
    except InvalidKey:
        raise ApiError(404, "push_not_configured", "this server's VAPID key is not usable; push is off") from None


def _as_api_error(exc: SubscriptionError) -> ApiError:
    return ApiError(404 if exc.code == "subscription_not_found" else 400, exc.code, exc.detail)


@api(["GET"], None)
def public_key(request: HttpRequest) -> JsonResponse:
    """The applicationServerKey for ``PushManager.subscribe()``."""
    return JsonResponse({"public_key": _public_key()})


@api(["POST"], "customer")
def subscriptions(request: HttpRequest, principal: Principal) -> JsonResponse:
    """Register this device (``PushSubscription.toJSON()``); the same endpoint again is 200."""
    _public_key()
    data = json_body(request)
    endpoint = field_str(data, "endpoint", max_length=4096) or ""
    keys: Any = data.get("keys")
    if not isinstance(keys, dict):
        raise ApiError(400, "missing_field", "'keys' with 'p256dh' and 'auth' is required")
    p256dh = field_str(keys, "p256dh", max_length=200) or ""
    auth = field_str(keys, "auth", max_length=100) or ""
    try:
        reg = subscription_register(customer_id=principal.customer_id, endpoint=endpoint, p256dh=p256dh, auth=auth)
    except SubscriptionError as exc:
        raise _as_api_error(exc) from None
    return JsonResponse({"subscription_id": str(reg.subscription.pk)}, status=201 if reg.created else 200)


@api(["DELETE"], "customer")
def subscription_detail(request: HttpRequest, principal: Principal, subscription_id: str) -> HttpResponse:
    """Forget one of this customer's devices; anyone else's is 404."""
    try:
        sid = uuid.UUID(subscription_id)
    except ValueError:
        raise ApiError(404, "subscription_not_found", f"no push subscription {subscription_id}") from None
    try:
        subscription_delete(customer_id=principal.customer_id, subscription_id=sid)
    except SubscriptionError as exc:
        raise _as_api_error(exc) from None
    return HttpResponse(status=204)


@lru_cache(maxsize=1)
def _service_worker_source(mtime: float) -> bytes:
    return SERVICE_WORKER.read_bytes()


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """``/sw.js`` from the site root, so its scope can cover ``/chat/``."""
    body = _service_worker_source(SERVICE_WORKER.stat().st_mtime)
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    # Browsers check for a new worker on navigation; let them always see the latest.
    response["Cache-Control"] = "no-cache"
    return response
