"""The workflow decides first and appends at the end of its batch (eventstore.deferred).

On PostgreSQL readers of the log wait behind every transaction that has an
id and may append; the workflow's batch must not hold them back while it
decides, and a conversation that changes under its decisions (an agent's
claim in that moment) must still end up with every decision once. Real
threads, each with its own connection; left out of the SQLite run, which
has no read barrier and where the workflow appends as it goes.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection

from conversations import handlers
from conversations.commands import Agent, Claim
from conversations.events import stream_id
from eventstore.deferred import DeferredAppends
from eventstore.events import Cursor
from eventstore.store import EventStore
from project.bootstrap import pipeline, workflow
from tests.eventstore_fixtures import noted
from tests.integration.test_agent_tools import customer_says

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _pause_before_writing(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the workflow's deferred pass wait, its decisions made and nothing written."""
    decided, go_on = threading.Event(), threading.Event()
    flush = DeferredAppends.flush

    def paused(self: DeferredAppends) -> None:
        if self.pending:
            decided.set()
            assert go_on.wait(10)
        flush(self)

    monkeypatch.setattr(DeferredAppends, "flush", paused)
    return decided, go_on


def _in_thread(fn: Any) -> tuple[threading.Thread, list[BaseException]]:
    failed: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failed.append(exc)
        finally:
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    return t, failed


def _types(customer_id: str) -> list[str]:
    return [r.event_type for r in EventStore().read_stream(stream_id(uuid.UUID(customer_id)))]


def test_while_the_workflow_decides_the_log_is_read_past_it(customer, monkeypatch):
    customer_says(customer.id, "Hello?")
    pipeline().catch_up()
    decided, go_on = _pause_before_writing(monkeypatch)
    runner = workflow()
    assert runner.acquire_lease()
    t, failed = _in_thread(runner.process_batch)
    try:
        assert decided.wait(10)
        late = EventStore().append("written-meanwhile", [noted()], 0)[0]
        seen = [r.stream_id for r in EventStore().read_all(Cursor.start(), limit=10_000)]
    finally:
        go_on.set()
        t.join()
    assert not failed
    assert seen[-1] == "written-meanwhile" and late.position in {
        r.position for r in EventStore().read_all(Cursor.start(), limit=10_000)}
    # What the workflow decided is in the log, once, after what was written meanwhile.
    assert _types(customer.id).count("FirstResponseClockStarted") == 1
    workflow_event = [r for r in EventStore().read_all(Cursor.start(), limit=10_000)
                      if r.event_type == "FirstResponseClockStarted"]
    assert len(workflow_event) == 1 and workflow_event[0].position > late.position


def test_a_claim_between_the_decisions_and_their_writing_is_kept_and_the_batch_decided_again(
        customer, make_agent, monkeypatch, caplog):
    caplog.set_level("INFO", logger="conversations.process_manager")
    grace = make_agent()
    customer_says(customer.id, "Hello?")
    pipeline().catch_up()
    decided, go_on = _pause_before_writing(monkeypatch)
    runner = workflow()
    assert runner.acquire_lease()
    t, failed = _in_thread(runner.process_batch)
    try:
        assert decided.wait(10)
        # The conversation moves under the deferred decisions: their versions are taken.
        handlers.claim(Claim(uuid.UUID(customer.id), Agent(grace.id, "Grace")))
    finally:
        go_on.set()
        t.join()
    assert not failed
    assert "deciding again" in caplog.text  # the deferred pass met the claim and was undone
    # The claim stands, and the workflow's decision was made again on top of it, once.
    types = _types(customer.id)
    assert types.count("ConversationAssigned") == 1
    assert types.count("FirstResponseClockStarted") == 1
    versions = [r.version for r in EventStore().read_stream(stream_id(uuid.UUID(customer.id)))]
    assert versions == list(range(1, len(versions) + 1))
    assert runner.cursor is not None  # the batch committed: its checkpoint moved


def test_a_customer_erased_between_the_decisions_and_their_writing_stops_nothing(customer, make_customer, monkeypatch):
    from project.privacy import erase_customer

    other = make_customer()
    customer_says(customer.id, "Hello?")
    customer_says(other.id, "Anyone?")
    pipeline().catch_up()
    decided, go_on = _pause_before_writing(monkeypatch)
    runner = workflow()
    assert runner.acquire_lease()
    t, failed = _in_thread(runner.process_batch)
    try:
        assert decided.wait(10)
        assert erase_customer(uuid.UUID(customer.id), reason="request", actor="test")
    finally:
        go_on.set()
        t.join()
    assert not failed  # the batch went through: nothing more decided about the erased customer
    assert runner.cursor is not None
    assert _types(other.id).count("FirstResponseClockStarted") == 1
