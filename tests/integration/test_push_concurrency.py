"""Several delivery workers at once, on real threads with their own connections."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import DeliveryState, PushDelivery
from tests.integration.test_push_support import (
    Clock,
    agent_says,
    make_worker,
    push,  # noqa: F401  (fixture)
    run_pipeline,
    subscribe,
    vapid_keys,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 6


def run_workers_in_threads(count: int, **config: Any) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)
    clock = Clock()

    def work() -> None:
        try:
            worker = make_worker(clock, **config)
            start.wait()
            worker.drain()
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return errors


def test_many_workers_send_every_row_exactly_once_and_each_device_in_order(push, vapid_keys, make_customer, agent):
    customers = [make_customer(name=f"Customer {i}", email=f"c{i}@example.com") for i in range(12)]
    devices = {c.id: [subscribe(push, c, vapid_keys) for _ in range(2)] for c in customers}
    said: dict[str, list[str]] = {c.id: [] for c in customers}
    for round_ in range(3):
        for c in customers:
            said[c.id].append(agent_says(agent, c, f"message {round_}")[0])
    run_pipeline()
    rows = PushDelivery.objects.count()
    assert rows == 12 * 2 * 3

    # Small claims, so that workers contend for the same devices over and over.
    errors = run_workers_in_threads(WORKERS, batch=2, sends_per_device=1)
    assert errors == []

    assert set(PushDelivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}
    deliveries = push.deliveries()
    assert len(deliveries) == rows
    per_row = Counter((d.subscription_id, d.json()["message"]["message_id"]) for d in deliveries)
    assert set(per_row.values()) == {1}
    for c in customers:
        for device in devices[c.id]:
            got = device.payloads()
            # One device's pushes leave one at a time, in log order, and the
            # count it is shown never goes back.
            assert [p["message"]["message_id"] for p in got] == said[c.id]
            assert [p["position"] for p in got] == sorted(p["position"] for p in got)


@pytest.mark.postgres
def test_on_postgresql_devices_are_claimed_with_skip_locked(push, vapid_keys, customer, agent):
    subscribe(push, customer, vapid_keys)
    agent_says(agent, customer)
    run_pipeline()
    with CaptureQueriesContext(connection) as queries:
        make_worker().run_once()
    assert any("FOR UPDATE SKIP LOCKED" in q["sql"] for q in queries.captured_queries)
