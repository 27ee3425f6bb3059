"""Exactly one effect however many copies of a delivery arrive at once.

Real threads, released together by a barrier, each with its own test
client and its own database connection (closed at the end of the thread);
on SQLite in the plain run and on PostgreSQL in CI.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from django.db import connection
from django.test import Client

from customers.models import Customer
from eventstore.models import StoredEvent
from inbound.models import InboundDelivery
from inbound.signatures import header_value
from tests.integration.test_inbound_webhooks import SECRET, SOURCE, payload

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


@pytest.fixture(autouse=True)
def webhook_secrets(settings: Any) -> None:
    settings.INBOUND_WEBHOOK_SECRETS = {SOURCE: [SECRET]}


def at_once(n: int, fn: Callable[[int, Client], T]) -> list[T]:
    """Run ``fn(i, client)`` for i in 0..n-1 in n threads released at the same moment."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        client = Client()
        barrier.wait()
        try:
            return fn(i, client)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def post(client: Client, raw: bytes, header: str) -> tuple[int, dict[str, Any]]:
    r = client.post(
        f"/webhooks/v1/inbound/{SOURCE}", raw, content_type="application/json", HTTP_X_PARLEY_SIGNATURE=header
    )
    return r.status_code, r.json()


def count(event_type: str) -> int:
    return StoredEvent.objects.filter(event_type=event_type).count()


def assert_one_winner_and_the_same_message(answers: list[tuple[int, dict[str, Any]]], n: int) -> str:
    assert [status for status, _ in answers] == [202] * n
    message_ids = {body["message_id"] for _, body in answers}
    assert len(message_ids) == 1
    assert sorted(body["duplicate"] for _, body in answers) == [False] + [True] * (n - 1)
    return message_ids.pop()


def test_fifty_identical_deliveries_at_once_store_exactly_one_message():
    raw = payload(event_id="evt_storm", text="Where is my parcel?")
    header = header_value([SECRET], int(time.time()), raw)

    answers = at_once(50, lambda i, client: post(client, raw, header))

    message_id = assert_one_winner_and_the_same_message(answers, 50)
    assert count("MessageSent") == 1
    assert json.loads(StoredEvent.objects.get(event_type="MessageSent").data)["message_id"] == message_id
    assert InboundDelivery.objects.count() == 1
    assert Customer.objects.count() == 1
    assert count("CustomerRegistered") == 1


def test_fifty_identical_deliveries_without_event_id_store_exactly_one_message():
    raw = payload(event_id=None, text="No event id, same bytes")
    header = header_value([SECRET], int(time.time()), raw)

    answers = at_once(50, lambda i, client: post(client, raw, header))

    assert_one_winner_and_the_same_message(answers, 50)
    assert count("MessageSent") == 1
    assert InboundDelivery.objects.get().key_kind == "body_sha256"


def test_a_first_contact_storm_creates_one_customer_and_keeps_every_message():
    # A new customer's first messages, all different events with the same
    # text, arriving at once: one customer, every message stored once.
    n = 20
    deliveries = []
    for i in range(n):
        raw = payload(event_id=f"evt_first_{i}", external_id="+449999000", text="hello?")
        deliveries.append((raw, header_value([SECRET], int(time.time()), raw)))

    answers = at_once(n, lambda i, client: post(client, *deliveries[i]))

    assert [status for status, _ in answers] == [202] * n
    assert [body["duplicate"] for _, body in answers] == [False] * n
    assert len({body["message_id"] for _, body in answers}) == n
    customer = Customer.objects.get()
    assert customer.external_id == f"{SOURCE}:+449999000"
    assert count("CustomerRegistered") == 1
    sent = [json.loads(d) for d in StoredEvent.objects.filter(event_type="MessageSent").values_list("data", flat=True)]
    assert len(sent) == n
    assert {m["customer_id"] for m in sent} == {str(customer.id)}
    assert InboundDelivery.objects.count() == n


def test_copies_of_several_deliveries_interleaved_store_one_message_each():
    # 5 deliveries x 8 copies, shuffled together by the scheduler.
    raws = [payload(event_id=f"evt_mix_{k}", external_id=f"cust_{k % 2}", text="same text") for k in range(5)]
    headers = [header_value([SECRET], int(time.time()), raw) for raw in raws]

    answers = at_once(40, lambda i, client: post(client, raws[i % 5], headers[i % 5]))

    assert [status for status, _ in answers] == [202] * 40
    for k in range(5):
        assert_one_winner_and_the_same_message(answers[k::5], 8)
    assert count("MessageSent") == 5
    assert InboundDelivery.objects.count() == 5
    assert Customer.objects.count() == 2
