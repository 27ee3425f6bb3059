"""Delivery workers that die: killed mid-send, and restarted while a push is held.

The worker runs in a subprocess (the real ``run_delivery_workers`` loop, on
the test database) and is killed with SIGKILL: no cleanup runs, exactly
like a crash or an OOM kill.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from notifications.models import DeliveryState, PushDelivery
from readmodels.models import EventRows
from tests.integration.test_push_support import (
    Clock,
    agent_says,
    customer_reads,
    make_worker,
    push,  # noqa: F401  (fixture)
    run_pipeline,
    subscribe,
    summary,
    vapid_keys,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 30.0

WORKER = """
import asyncio, sys
import django
django.setup()
from django.conf import settings
settings.PUSH_LEASE_SECONDS = float(sys.argv[1])
settings.PUSH_TIMEOUT_SECONDS = 5.0
settings.PUSH_CLAIM_BATCH = 1  # a round per device, so each device's push is marked before the next
from notifications.lanes import run_delivery_workers
print("ready", flush=True)
asyncio.run(run_delivery_workers(asyncio.Event(), lanes=1))
"""


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(vapid_keys, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "PARLEY_KEYS": settings.PARLEY_KEYS,
        "DATABASE_URL": database_url(),
        "VAPID_PRIVATE_KEY": vapid_keys.private_key,
        "VAPID_PUBLIC_KEY": vapid_keys.public_key,
        "VAPID_SUBJECT": "mailto:support@parley.test",
        "PARLEY_POLL_INTERVAL": "0.1",
    }
    log = open(tmp_path / f"{name}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(LEASE_SECONDS)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", (tmp_path / f"{name}.log").read_text()
    return proc


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()  # SIGKILL: no finally blocks, no lease release
    proc.wait(timeout=10)


def wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def test_a_worker_killed_mid_send_loses_no_row_and_never_repeats_one_it_marked_sent(
    push, vapid_keys, customer, agent, tmp_path
):
    devices = [subscribe(push, customer, vapid_keys) for _ in range(3)]
    mid, _ = agent_says(agent, customer)
    run_pipeline()
    # One device per round: the first round's push is accepted and marked,
    # the second round's is in flight (held open at the service) when the worker dies.
    push.hold, push.hold_from = threading.Event(), 2
    worker = start_worker(vapid_keys, tmp_path, "killed")
    try:
        push.wait_for_requests(2, timeout=30)
    finally:
        kill(worker)
        push.hold.set()
    push.wait_for(2, timeout=10)  # the in-flight push still lands: the service accepted it

    rows = {str(r.subscription_id): r for r in PushDelivery.objects.all()}
    marked = [d for d in devices if rows[d.subscription_id].state == DeliveryState.SENT]
    in_flight = [d for d in devices if d.deliveries() and rows[d.subscription_id].state == DeliveryState.PENDING]
    untouched = [d for d in devices if not d.deliveries()]
    assert (len(marked), len(in_flight), len(untouched)) == (1, 1, 1)

    clock = Clock()
    clock.advance(LEASE_SECONDS + 1)  # the dead worker's lease has run out
    make_worker(clock).drain()

    assert set(PushDelivery.objects.values_list("state", flat=True)) == {DeliveryState.SENT}
    assert len(marked[0].deliveries()) == 1  # marked sent before the kill: never again
    assert len(untouched[0].deliveries()) == 1
    # The documented at-least-once edge: accepted but not yet marked (its
    # round had not ended) when the worker died, so sent once more,
    # identical and under the same Topic.
    again = in_flight[0].deliveries()
    assert len(again) == 2
    assert again[0].payload == again[1].payload and again[0].topic == again[1].topic
    assert all(d.payloads()[0]["message"]["message_id"] == mid for d in devices)


def test_a_delayed_push_survives_a_worker_restart_and_a_message_read_meanwhile_is_dropped(
    push, vapid_keys, customer, agent, settings, tmp_path
):
    settings.PUSH_DELAY_SECONDS = 4.0
    device = subscribe(push, customer, vapid_keys)
    worker = start_worker(vapid_keys, tmp_path, "first")
    try:
        read_soon, _ = agent_says(agent, customer, "Are you there?")
        left_unread, _ = agent_says(agent, customer, "Your refund is on its way")
        run_pipeline()
        p_read = customer_reads(customer, read_soon)
        run_pipeline()
        assert push.requests == 0  # held, not sent
    finally:
        kill(worker)

    worker = start_worker(vapid_keys, tmp_path, "second")
    try:
        push.wait_for(1, timeout=30)
        wait_until(lambda: not PushDelivery.objects.filter(state=DeliveryState.PENDING).exists())
    finally:
        worker.terminate()
        worker.wait(timeout=10)

    # Only the message still unread when its delay ran out, with the count as of the last event.
    rows = list(PushDelivery.objects.values_list("id", "position", "unread", "message_id", "state", "reason"))
    rows += list(EventRows.objects.values_list("position", "rows"))
    assert [summary(p) for p in device.payloads()] == [(1, p_read, left_unread)], rows
    reasons = dict(PushDelivery.objects.values_list("message_id", "reason"))
    assert reasons[uuid.UUID(read_soon)] == "message already read"


def test_a_delayed_push_is_held_until_due_then_sent(push, vapid_keys, customer, agent, settings):
    settings.PUSH_DELAY_SECONDS = 30.0
    device = subscribe(push, customer, vapid_keys)
    mid, p1 = agent_says(agent, customer)
    run_pipeline()
    clock = Clock()
    make_worker(clock).drain()
    assert push.requests == 0
    clock.advance(31)
    make_worker(clock).drain()  # a fresh worker: the schedule lives in the database
    assert [summary(p) for p in device.payloads()] == [(1, p1, mid)]
