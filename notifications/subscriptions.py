"""Push subscription use cases: register (idempotent per endpoint) and delete.

The server will POST to a subscription's endpoint, so the endpoint is the
dangerous part of the input: it must be https on a known push service
(``PUSH_ENDPOINT_ALLOWED_HOSTS``), or plain http on a host named in
``PUSH_ENDPOINT_INSECURE_HOSTS`` (a local push service in tests). Anything
else is refused before a row is written.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from kernel.errors import DomainError
from notifications.models import PushDelivery, PushSubscription
from notifications.vapid import InvalidKey, check_auth_secret, check_p256dh

MAX_ENDPOINT_CHARS = 2048
#: A customer with more devices than this loses the least recently registered one.
MAX_SUBSCRIPTIONS_PER_CUSTOMER = 20

# Printable ASCII without spaces, quotes, angle brackets or backslashes: no
# room for a URL that one parser reads differently from another.
_SAFE_URL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


class SubscriptionError(DomainError):
    """A refused registration."""

    code = "invalid_subscription"


class SubscriptionNotFound(SubscriptionError):
    code = "subscription_not_found"
    status = 404

    def __init__(self, subscription_id: object) -> None:
        super().__init__(f"no push subscription {subscription_id}")


@dataclass(frozen=True)
class DeviceRegistration:
    subscription: PushSubscription
    created: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _host_matches(host: str, port: int | None, entries: Iterable[str], default_port: int) -> bool:
    for entry in entries:
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port:
            if not entry_port.isdigit() or (port or default_port) != int(entry_port):
                continue
        elif port not in (None, default_port):
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


def check_endpoint(endpoint: str) -> str:
    """The endpoint if the server may POST to it, else SubscriptionError."""
    refused = SubscriptionError(
        "the endpoint must be an https URL of a known push service", code="push_endpoint_not_allowed"
    )
    if not endpoint or len(endpoint) > MAX_ENDPOINT_CHARS or not _SAFE_URL.fullmatch(endpoint):
        raise refused
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise refused from None
    host = (parts.hostname or "").rstrip(".")
    if not host or parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refused
    if parts.scheme == "https" and _host_matches(host, port, settings.PUSH_ENDPOINT_ALLOWED_HOSTS, 443):
        return endpoint
    if parts.scheme == "http" and _host_matches(host, port, settings.PUSH_ENDPOINT_INSECURE_HOSTS, 80):
        return endpoint
    raise refused


def check_keys(p256dh: str, auth: str) -> None:
    try:
        check_p256dh(p256dh)
    except InvalidKey as exc:
        raise SubscriptionError(f"keys.p256dh: {exc}", code="invalid_push_keys") from None
    try:
        check_auth_secret(auth)
    except InvalidKey as exc:
        raise SubscriptionError(f"keys.auth: {exc}", code="invalid_push_keys") from None


def subscription_register(*, customer_id: uuid.UUID, endpoint: str, p256dh: str, auth: str) -> DeviceRegistration:
    """Store this device's subscription for ``customer_id``; the same endpoint is the same subscription.

    A device that another customer had registered (a shared browser) moves
    to this customer, and what was still queued for the previous owner is
    dropped with it, so nobody's message previews reach another person.
    """
    check_endpoint(endpoint)
    check_keys(p256dh, auth)
    for _ in range(3):
        try:
            return _upsert(customer_id, endpoint, p256dh, auth)
        except IntegrityError:  # a simultaneous first registration of this endpoint won
            continue
    return _upsert(customer_id, endpoint, p256dh, auth)


@transaction.atomic
def _upsert(customer_id: uuid.UUID, endpoint: str, p256dh: str, auth: str) -> DeviceRegistration:
    now = _now()
    existing = PushSubscription.objects.select_for_update().filter(endpoint=endpoint).first()
    if existing is None:
        # A device we never pushed to shows no badge of ours: 0, so a
        # badge-only 0 is not sent to it for nothing.
        sub = PushSubscription.objects.create(
            customer_id=customer_id, endpoint=endpoint, p256dh=p256dh, auth=auth,
            created_at=now, updated_at=now, badge_unread=0,
        )
        _evict_beyond_limit(customer_id)
        return DeviceRegistration(sub, created=True)
    if existing.customer_id != customer_id:
        PushDelivery.objects.filter(subscription=existing).delete()
        existing.customer_id = customer_id
        existing.created_at = now  # a new owner: it hears about what happens from now on
        # What the device shows now is the previous owner's: unknown to us.
        existing.badge_unread = existing.badge_tx = existing.badge_position = None
    existing.p256dh, existing.auth, existing.updated_at = p256dh, auth, now
    existing.save()
    _evict_beyond_limit(customer_id)
    return DeviceRegistration(existing, created=False)


def _evict_beyond_limit(customer_id: uuid.UUID) -> None:
    stale = list(
        PushSubscription.objects.filter(customer_id=customer_id)
        .order_by("-updated_at", "-created_at")
        .values_list("pk", flat=True)[MAX_SUBSCRIPTIONS_PER_CUSTOMER:]
    )
    if stale:
        PushSubscription.objects.filter(pk__in=stale).delete()


def subscription_delete(*, customer_id: uuid.UUID, subscription_id: uuid.UUID) -> None:
    """Forget one of this customer's devices (and what was queued for it)."""
    deleted, _ = PushSubscription.objects.filter(pk=subscription_id, customer_id=customer_id).delete()
    if not deleted:
        raise SubscriptionNotFound(subscription_id)
