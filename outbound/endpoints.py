"""Webhook endpoints: register, list, delete, rotate the secret.

Services with keyword-only arguments; the API's views only translate. A
URL is checked by the SSRF guard (outbound.guard) before anything is
stored. A secret is ``whsec_`` and 32 random bytes in base64, as Standard
Webhooks libraries take it; it is returned once, by the call that made it.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from kernel.errors import DomainError
from outbound import guard
from outbound.models import WebhookEndpoint
from outbound.types import TYPES

MAX_ENDPOINTS = 50


class UnsupportedEventType(DomainError):
    code = "unsupported_event_type"
    status = 400


class EndpointNotFound(DomainError):
    code = "webhook_endpoint_not_found"
    status = 404


class TooManyEndpoints(DomainError):
    code = "too_many_webhook_endpoints"
    status = 400


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str


def supported_types() -> list[str]:
    return sorted(TYPES)


def check_types(events: Sequence[str]) -> list[str]:
    if not events:
        raise UnsupportedEventType(f"name at least one event type: {', '.join(supported_types())}")
    unknown = [e for e in events if e not in TYPES]
    if unknown:
        raise UnsupportedEventType(
            f"unsupported event type {unknown[0]!r}; supported: {', '.join(supported_types())}"
        )
    return list(dict.fromkeys(events))


def endpoint_register(*, url: str, events: Sequence[str], resolve: guard.Resolver | None = None) -> Created:
    """Check the URL and the types, then store the endpoint with a new secret."""
    types = check_types(events)
    guard.check(url, resolve)
    if WebhookEndpoint.objects.count() >= MAX_ENDPOINTS:
        raise TooManyEndpoints(f"at most {MAX_ENDPOINTS} webhook endpoints")
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(url=url, events=types, secret=secret, created_at=_now())
    return Created(endpoint, secret)


def endpoint_list() -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.order_by("created_at", "id"))


def _get(endpoint_id: uuid.UUID | None) -> WebhookEndpoint:
    found = WebhookEndpoint.objects.filter(pk=endpoint_id).first() if endpoint_id else None
    if found is None:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id}")
    return found


def endpoint_delete(*, endpoint_id: uuid.UUID | None) -> None:
    """Delete the endpoint and its deliveries, sent or not."""
    _get(endpoint_id).delete()


def endpoint_rotate_secret(*, endpoint_id: uuid.UUID | None) -> str:
    """A new secret; the current one keeps signing beside it for WEBHOOK_SECRET_OVERLAP_SECONDS."""
    with transaction.atomic():
        endpoint = _get(endpoint_id)
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        secret = new_secret()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = _now() + dt.timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
        endpoint.secret = secret
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    return secret


def present_endpoint(endpoint: WebhookEndpoint) -> dict[str, object]:
    """An endpoint as the API lists it (never its secret)."""
    return {
        "endpoint_id": str(endpoint.pk), "url": endpoint.url, "events": list(endpoint.events),
        "created_at": endpoint.created_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        "disabled": endpoint.disabled_at is not None, "disabled_reason": endpoint.disabled_reason,
    }
