"""Push endpoints: the VAPID public key and this device's subscriptions.

Rules live in ``notifications.subscriptions``; these views only translate.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.popouts import popout_subscribed
from accounts.principals import Principal
from api.errors import ApiError
from api.http import api, doc, field_str, json_body
from kernel import ids
from notifications.subscriptions import (
    SubscriptionError,
    subscription_delete,
    subscription_register,
    subscriptions_delete,
)
from notifications.vapid import InvalidKey, public_key_of


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


NOT_CONFIGURED = (404, "push_not_configured")


@api(["GET"], None)
@doc("GET", "The VAPID public key (applicationServerKey)", operation_id="getPushPublicKey", responses={200: "PushPublicKey"}, errors=[NOT_CONFIGURED])
def public_key(request: HttpRequest) -> JsonResponse:
    """The applicationServerKey for ``PushManager.subscribe()``."""
    return JsonResponse({"public_key": _public_key()})


@api(["POST"], "customer")
@doc("POST", "Register this device for push", operation_id="subscribePush", body="PushSubscription",
     responses={201: "PushSubscriptionId", 200: "PushSubscriptionId"},
     errors=[NOT_CONFIGURED, (400, "push_endpoint_not_allowed"), (400, "invalid_push_keys")],
     description="The same endpoint again answers 200 (and moves the device to this customer).")
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
    credential = principal.credential
    if credential is not None and credential.kind == "popout":
        # From a window the widget opened: its logout deletes this device too (accounts.popouts).
        if not popout_subscribed(session_id=credential.key, subscription_id=reg.subscription.pk):
            subscriptions_delete(customer_id=principal.customer_id, subscription_ids=[reg.subscription.pk])
            raise ApiError(401, "not_authenticated", "this window was signed out; sign in again")
    return JsonResponse({"subscription_id": str(reg.subscription.pk)}, status=201 if reg.created else 200)


@api(["DELETE"], "customer")
@doc("DELETE", "Forget one of this customer's devices", operation_id="unsubscribePush", responses={204: None},
     path={"subscription_id": {"schema": {"type": "string"}, "description": "not a UUID: 404"}},
     errors=[(404, "subscription_not_found")])
def subscription_detail(request: HttpRequest, principal: Principal, subscription_id: str) -> HttpResponse:
    """Forget one of this customer's devices; anyone else's is 404."""
    sid = ids.parse_uuid(subscription_id)
    if sid is None:
        raise ApiError(404, "subscription_not_found", f"no push subscription {subscription_id}")
    try:
        subscription_delete(customer_id=principal.customer_id, subscription_id=sid)
    except SubscriptionError as exc:
        raise _as_api_error(exc) from None
    return HttpResponse(status=204)
