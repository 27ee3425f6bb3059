"""A webhook delivery worker killed with SIGKILL mid-delivery: nothing is lost,
and what is sent again carries the same webhook-id.

The worker runs in a subprocess (the real ``run_webhook_workers`` loop, on
the test database); no cleanup runs, exactly like a crash or an OOM kill.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from outbound.models import WebhookDelivery, WebhookState
from tests.integration.test_push_restarts import database_url, kill
from tests.integration.webhook_support import Clock, receiver, register, run_pipeline, says, worker  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 30.0

WORKER = """
import asyncio
import django
django.setup()
from outbound.worker import run_webhook_workers
print("ready", flush=True)
asyncio.run(run_webhook_workers(asyncio.Event(), lanes=1))
"""


def start_worker(receiver, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "PARLEY_KEYS": settings.PARLEY_KEYS,
        "DATABASE_URL": database_url(),
        "WEBHOOK_INSECURE_HOSTS": receiver.host_port,
        "WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
        "WEBHOOK_TIMEOUT_SECONDS": "5",
        "WEBHOOK_CLAIM_BATCH": "1",
        "PARLEY_POLL_INTERVAL": "0.1",
        "PARLEY_CROSS_PROCESS_WAKEUP": "0",
    }
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", (tmp_path / "worker.log").read_text()
    return proc


def test_a_worker_killed_mid_delivery_loses_nothing_and_repeats_only_with_the_same_id(
    receiver, client, customer, tmp_path
):
    register(client, receiver, ["message.created"])
    for text in ("one", "two", "three"):
        says(customer, text)
    run_pipeline()
    # The first request is answered at once; the second is held open until the worker is dead.
    receiver.hold, receiver.hold_from = threading.Event(), 2

    proc = start_worker(receiver, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while receiver.arrived < 2:  # the first was answered; the second is in flight
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.01)
    finally:
        kill(proc)
        receiver.hold.set()
    receiver.wait_for_accepted(2)  # the in-flight request still completes at the receiver

    rows = list(WebhookDelivery.objects.order_by("id"))
    assert [r.state for r in rows] == [WebhookState.DELIVERED, WebhookState.PENDING, WebhookState.PENDING]
    assert rows[1].lease_owner  # leased by the dead worker

    clock = Clock()
    clock.advance(LEASE_SECONDS + 1)  # its lease has run out
    worker(clock).drain()

    assert [r.state for r in WebhookDelivery.objects.order_by("id")] == [WebhookState.DELIVERED] * 3
    ids = [str(r.event_id) for r in rows]
    got = [req.webhook_id for req in receiver.accepted()]
    assert list(dict.fromkeys(got)) == ids  # nothing lost, in log order
    assert got == [ids[0], ids[1], ids[1], ids[2]]  # the in-flight one twice, under the same id
    bodies = [req.body for req in receiver.accepted() if req.webhook_id == ids[1]]
    assert bodies[0] == bodies[1]
