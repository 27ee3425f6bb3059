"""A receiver that hangs holds only its own endpoint's share of the delivery threads,
and however many hang, they never hold them all.

Real threads and real receivers: the delivery pool (``run_webhook_workers``,
as ``runworkers`` runs it) on an asyncio loop of its own, and two local
HTTP receivers, one of which answers only after the delivery timeout has
passed, like a receiver that hangs. The healthy receiver's deliveries must
not queue behind the hung one's: docs/webhooks-outbound.md promises that a
slow receiver holds back only its own events.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from outbound.models import WebhookDelivery, WebhookState
from outbound.worker import run_webhook_workers
from tests.integration.webhook_support import KEY, register, run_pipeline, says
from tests.support.webhookreceiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 4.0  # WEBHOOK_TIMEOUT_SECONDS here
THREADS = 4
CUSTOMERS = 24


@contextmanager
def delivery_pool(lanes: int) -> Iterator[None]:
    """The webhook delivery workers of one process, running until the block ends."""
    done = threading.Event()

    def serve() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(run_webhook_workers(stop, lanes=lanes))
            while not done.is_set():
                await asyncio.sleep(0.02)
            stop.set()
            await task

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="webhook pool")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the delivery pool did not stop"


def test_a_hung_receiver_never_holds_back_another_endpoints_deliveries(client: Any, make_customer: Any, settings: Any):
    settings.PARLEY_INTEGRATION_KEY = KEY
    settings.WEBHOOK_TIMEOUT_SECONDS = TIMEOUT
    settings.WEBHOOK_LEASE_SECONDS = 3 * TIMEOUT
    settings.WEBHOOK_POLL_INTERVAL = 0.5
    with WebhookReceiver() as hung, WebhookReceiver() as healthy:
        settings.WEBHOOK_INSECURE_HOSTS = [hung.host_port, healthy.host_port]
        hung.delay = TIMEOUT + 1.0  # answers after the sender has given up on it
        register(client, hung, ["message.created"])
        register(client, healthy, ["message.created"])
        for i in range(CUSTOMERS):
            says(make_customer(f"Customer {i}", email=f"c{i}@example.com"), f"hello {i}")
        run_pipeline()
        assert WebhookDelivery.objects.count() == 2 * CUSTOMERS  # one per event and endpoint, ids interleaved

        with delivery_pool(THREADS):
            healthy.wait_for_accepted(CUSTOMERS, timeout=60)
            done = time.monotonic()
            assert hung.arrived > 0  # while the hung receiver was being tried
            # Every healthy delivery went out before the first request to the hung receiver had
            # timed out: none of them waited behind it. (Counted from that request, not from the
            # pool's start, which a loaded machine can make as slow as it likes.)
            took = done - hung.arrived_at[0]
            assert took < TIMEOUT, f"the healthy endpoint's {CUSTOMERS} deliveries ended {took:.1f}s into the hang"
        # It held some threads, never all of them.
        assert 1 <= hung.most_at_once < THREADS
        # Nothing lost: the healthy endpoint's rows are delivered, the hung one's wait for their retries.
        assert states(healthy) == {WebhookState.DELIVERED}
        assert states(hung) == {WebhookState.PENDING}


def states(receiver: WebhookReceiver) -> set[str]:
    return set(WebhookDelivery.objects.filter(endpoint__url=receiver.url).values_list("state", flat=True))


def test_hung_receivers_filling_their_caps_leave_a_thread_for_a_healthy_endpoint(
    client: Any, make_customer: Any, settings: Any,
):
    # The defaults: 8 threads, 4 of them at most for one endpoint. Two
    # receivers that hang (they answer only when the test lets them) could
    # hold all 8; the request timeout is far off, so nothing frees a thread.
    settings.PARLEY_INTEGRATION_KEY = KEY
    settings.WEBHOOK_TIMEOUT_SECONDS = 60.0
    settings.WEBHOOK_LEASE_SECONDS = 180.0
    settings.WEBHOOK_POLL_INTERVAL = 0.5
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 4
    settings.WEBHOOK_CLAIM_BATCH = 1  # a round per delivery: 24 rounds of each hung endpoint to fill its cap with
    threads, late = 8, 4
    hanging = threading.Event()
    with WebhookReceiver() as hung, WebhookReceiver() as hung2, WebhookReceiver() as healthy:
        settings.WEBHOOK_INSECURE_HOSTS = [hung.host_port, hung2.host_port, healthy.host_port]
        hung.hold = hung2.hold = hanging
        register(client, hung, ["message.created"])
        register(client, hung2, ["message.created"])
        for i in range(CUSTOMERS):
            says(make_customer(f"Customer {i}", email=f"c{i}@example.com"), f"hello {i}")
        run_pipeline()
        try:
            with delivery_pool(threads):
                # The hung receivers take every thread they may: each its cap, together all but one.
                wait_until(lambda: hung.at_once + hung2.at_once >= threads - 1)
                register(client, healthy, ["message.created"])
                for i in range(late):
                    says(make_customer(f"Late {i}", email=f"l{i}@example.com"), f"late {i}")
                run_pipeline()
                # The healthy endpoint's deliveries all arrive while every hung request is still open.
                healthy.wait_for_accepted(late, timeout=30)
                assert hung.accepted() == [] and hung2.accepted() == []
                assert sorted([hung.at_once, hung2.at_once]) == [3, 4]  # one at its cap, the other one short
                hanging.set()
        finally:
            hanging.set()
    assert states(healthy) == {WebhookState.DELIVERED}
    assert hung.most_at_once + hung2.most_at_once == threads - 1  # never every thread


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
