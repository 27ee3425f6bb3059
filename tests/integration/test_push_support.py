"""Fixtures and helpers shared by the push tests (this module holds no tests).

Pushes go to ``tests.support.pushservice.PushService``, a real RFC
8030/8291/8292 receiver: nothing here mocks the push protocol. Time, where a
test needs to move it (Retry-After, backoff, PUSH_DELAY_SECONDS), is handed
to the worker as a clock rather than slept through.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db.models import Max

from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from eventstore.models import StoredEvent
from eventstore.runner import checkpoint_cursor
from eventstore.store import EventStore
from notifications.config import DeliveryConfig
from notifications.models import PushDelivery
from notifications.process_manager import PUSH
from notifications.vapid import VapidKeys, generate_vapid_keys
from notifications.worker import DeliveryWorker
from project.bootstrap import group
from readmodels.projections import PIPELINE
from tests.support.pushservice import Delivery, PushService, Subscription

SUBJECT = "mailto:support@parley.test"


class Clock:
    """Real time plus an offset the test moves forward by hand."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    @property
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


@pytest.fixture
def vapid_keys(settings: Any) -> VapidKeys:
    keys = generate_vapid_keys()
    settings.VAPID_PRIVATE_KEY = keys.private_key
    settings.VAPID_PUBLIC_KEY = keys.public_key
    settings.VAPID_SUBJECT = SUBJECT
    settings.PUSH_DELAY_SECONDS = 0.0
    return keys


@pytest.fixture
def push(settings: Any, vapid_keys: VapidKeys) -> Iterator[PushService]:
    """A local push service whose origin the server may POST to over http."""
    with PushService() as service:
        settings.PUSH_ENDPOINT_INSECURE_HOSTS = [service.base_url.removeprefix("http://")]
        yield service


@dataclass
class Device:
    """A browser's subscription at the push service, registered with Parley."""

    push: Subscription
    subscription_id: str

    def payloads(self) -> list[dict[str, Any]]:
        return [d.json() for d in self.push.deliveries()]

    def deliveries(self) -> list[Delivery]:
        return self.push.deliveries()


def subscribe(push_service: PushService, caller: Any, vapid_keys: VapidKeys) -> Device:
    """Subscribe like ``PushManager.subscribe({applicationServerKey})`` and POST it."""
    sub = push_service.new_subscription(application_server_key=vapid_keys.public_key)
    r = caller.post("/api/v1/push-subscriptions", sub.to_json())
    assert r.status_code == 201, r.content
    return Device(sub, r.json()["subscription_id"])


def _caught_up(names: list[str]) -> bool:
    """Every named consumer has processed the last event appended so far.

    On PostgreSQL an event becomes readable only once every older
    transaction in the cluster has finished (the event store's read
    barrier), so a catch-up can come back short while some other session
    holds a transaction open; callers wait and go again.
    """
    last = StoredEvent.objects.aggregate(p=Max("position"))["p"]
    if last is None:
        return True
    target = EventStore().cursor_at(int(last))
    return all(checkpoint_cursor(n) >= target for n in names)


def run_pipeline(timeout: float = 180.0) -> int:
    """The read models, then the push process manager that follows them (as the workers run
    them, each in its group), caught up with the log; returns the events push handled."""
    deadline = time.monotonic() + timeout
    applied = 0
    while True:
        group(PIPELINE).catch_up()
        applied += group(PUSH).catch_up()
        if _caught_up([PIPELINE, PUSH]):
            return applied
        if time.monotonic() > deadline:
            raise TimeoutError("the consumers did not catch up with the log")
        time.sleep(0.02)


def make_worker(clock: Clock | None = None, **overrides: Any) -> DeliveryWorker:
    overrides.setdefault("timeout", 5.0)
    overrides.setdefault("lease_seconds", 30.0)
    return DeliveryWorker(DeliveryConfig.from_settings(**overrides), clock=clock or Clock())


def agent_says(agent: Any, customer: Any, body: str = "Hello from support") -> tuple[str, int]:
    """An agent's message through the command handler (the HTTP route is covered
    by the chat tests; its directory wait runs on a thread whose connection
    outlives the test)."""
    outcome = send_message(
        SendMessage(uuid.uuid4(), uuid.UUID(customer.id), Actor(SenderKind.AGENT, agent.id, "Grace"), body)
    )
    return str(outcome.message.message_id), outcome.position


def customer_reads(customer: Any, message_id: str) -> int:
    r = customer.post(f"/api/v1/messages/{message_id}/read")
    assert r.status_code == 200, r.content
    return int(r.json()["position"])


def states() -> dict[str, int]:
    out: dict[str, int] = {}
    for state in PushDelivery.objects.values_list("state", flat=True):
        out[state] = out.get(state, 0) + 1
    return out


def summary(payload: dict[str, Any]) -> tuple[int, int, str | None]:
    message = payload["message"]
    return payload["unread"], payload["position"], message["message_id"] if message else None
