"""Fixtures and helpers shared by the outbound webhook tests (no tests here).

Deliveries go to ``tests.support.webhookreceiver.WebhookReceiver``, a real
local HTTP server that verifies signatures with the standardwebhooks
library. Time, where a test must move it past a retry window, is the
worker's clock, not a sleep.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chat.commands import Actor, EditMessage, MarkMessageAsRead, SendMessage
from chat.events import SenderKind
from chat.handlers import edit_message, mark_message_as_read, send_message
from outbound.models import WebhookDelivery
from outbound.process_manager import WEBHOOKS
from outbound.worker import WebhookConfig, WebhookWorker
from project.bootstrap import group
from readmodels.projections import PIPELINE
from tests.integration.test_push_support import Clock, _caught_up
from tests.support.webhookreceiver import WebhookReceiver

KEY = "test-integration-key"
ALL_TYPES = ["message.created", "message.edited", "message.read", "customer.updated"]


@pytest.fixture
def receiver(settings: Any) -> Iterator[WebhookReceiver]:
    settings.PARLEY_INTEGRATION_KEY = KEY
    with WebhookReceiver() as r:
        settings.WEBHOOK_INSECURE_HOSTS = [r.host_port]
        yield r


def integration(client: Any, method: str, path: str, body: Any = None) -> Any:
    call = getattr(client, method)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {KEY}"}
    if body is None:
        return call(path, **auth)
    import json

    return call(path, json.dumps(body), content_type="application/json", **auth)


def register(client: Any, receiver: WebhookReceiver, events: list[str] | None = None) -> dict[str, str]:
    r = integration(client, "post", "/api/v1/webhook-endpoints", {"url": receiver.url, "events": events or ALL_TYPES})
    assert r.status_code == 201, r.content
    receiver.secret = r.json()["secret"]
    return r.json()


def says(customer: Any, body: str, *, agent: Any = None) -> str:
    actor = Actor(SenderKind.AGENT, agent.id, "Grace") if agent else Actor(SenderKind.CUSTOMER, customer.id, "")
    out = send_message(SendMessage(uuid.uuid4(), uuid.UUID(customer.id), actor, body))
    return str(out.message.message_id)


def edits(customer: Any, message_id: str, body: str) -> None:
    edit_message(EditMessage(uuid.UUID(message_id), Actor(SenderKind.CUSTOMER, customer.id, ""), body))


def reads(customer: Any, message_id: str) -> None:
    mark_message_as_read(MarkMessageAsRead(uuid.UUID(message_id), Actor(SenderKind.CUSTOMER, customer.id, "")))


def worker(clock: Clock | None = None, **config: Any) -> WebhookWorker:
    values: dict[str, Any] = {"timeout": 5.0, "lease_seconds": 30.0, "backoff_base": 0.02, "backoff_cap": 0.1}
    values.update(config)
    return WebhookWorker(WebhookConfig(**values), clock=clock or Clock())


def deliver_until(w: WebhookWorker, receiver: WebhookReceiver, accepted: int, timeout: float = 60.0) -> None:
    """Run the worker (retries are due within a fraction of a second) until the receiver accepted ``accepted``."""
    deadline = time.monotonic() + timeout
    while len(receiver.accepted()) < accepted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(receiver.accepted())} of {accepted} accepted: {states()}")
        if not w.run_once().attempts:
            time.sleep(0.02)


def run_pipeline(timeout: float = 180.0) -> None:
    """The read models, then the webhook process manager that follows them (as the workers
    run them, each in its group), caught up with the log."""
    deadline = time.monotonic() + timeout
    while True:
        group(PIPELINE).catch_up()
        group(WEBHOOKS).catch_up()
        if _caught_up([PIPELINE, WEBHOOKS]):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the consumers did not catch up with the log")
        time.sleep(0.02)


def states() -> dict[str, int]:
    out: dict[str, int] = {}
    for s in WebhookDelivery.objects.values_list("state", flat=True):
        out[s] = out.get(s, 0) + 1
    return out


__all__ = ["Clock"]
