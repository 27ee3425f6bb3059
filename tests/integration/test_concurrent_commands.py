"""Idempotency of client-generated ids under truly simultaneous copies.

Real threads, each with its own database connection; on SQLite in the
plain run and on PostgreSQL in CI.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from chat.commands import Actor, MarkMessageAsRead, SendMessage
from chat.events import SenderKind
from chat.handlers import mark_message_as_read, send_message
from customers.services import customer_register
from eventstore.models import StoredEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _threaded(n: int, fn):
    barrier = threading.Barrier(n)

    def run(i: int):
        barrier.wait()
        try:
            return fn(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_fifty_identical_sends_at_once_store_exactly_one_message():
    customer_id = uuid.uuid4()
    cmd = SendMessage(uuid.uuid4(), customer_id, Actor(SenderKind.CUSTOMER, str(customer_id)), "same body")
    outcomes = _threaded(50, lambda i: send_message(cmd))
    assert StoredEvent.objects.filter(event_type="MessageSent").count() == 1
    assert sum(o.appended for o in outcomes) == 1
    assert len({(o.message, o.position) for o in outcomes}) == 1


def test_concurrent_sends_with_different_bodies_leave_one_winner_and_conflicts():
    from chat.errors import MessageIdConflict

    customer_id = uuid.uuid4()
    message_id = uuid.uuid4()
    actor = Actor(SenderKind.CUSTOMER, str(customer_id))

    def attempt(i: int):
        try:
            return send_message(SendMessage(message_id, customer_id, actor, f"body {i % 2}"))
        except MessageIdConflict:
            return "conflict"

    results = _threaded(20, attempt)
    winners = [r for r in results if r != "conflict"]
    assert StoredEvent.objects.filter(event_type="MessageSent").count() == 1
    stored_body = winners[0].message.body
    assert all(w.message.body == stored_body for w in winners)
    assert results.count("conflict") == sum(1 for i in range(20) if f"body {i % 2}" != stored_body)


def test_three_devices_marking_read_at_once_append_one_event():
    customer_id = customer_register(name="Three Devices").customer.id
    agent = Actor(SenderKind.AGENT, "1", "Grace")
    sent = send_message(SendMessage(uuid.uuid4(), customer_id, agent, "hello"))
    me = Actor(SenderKind.CUSTOMER, str(customer_id))
    outcomes = _threaded(3, lambda i: mark_message_as_read(MarkMessageAsRead(sent.message.message_id, me)))
    assert StoredEvent.objects.filter(event_type="MessageMarkedAsRead").count() == 1
    assert sum(o.appended for o in outcomes) == 1
    assert len({o.position for o in outcomes}) == 1
