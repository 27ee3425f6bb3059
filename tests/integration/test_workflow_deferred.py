"""The workflow decides first and appends at the end of its batch (eventstore.deferred).

On PostgreSQL readers of the log wait behind every transaction that has an
id and may append; the workflow's batch must not hold them back while it
decides, and a conversation that changes under its decisions (an agent's
claim, an erasure, in that moment) must still end up with every decision
once. Real threads, each with its own connection; left out of the SQLite
run, which has no read barrier and where the workflow appends as it goes.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from conversations import handlers
from conversations.commands import Agent, Claim
from conversations.events import stream_id
from eventstore.deferred import DeferredAppends
from eventstore.events import Cursor
from eventstore.runner import ConsumerRunner
from eventstore.store import EventStore
from project.bootstrap import pipeline, workflow
from tests.eventstore_fixtures import noted
from tests.integration.test_agent_tools import customer_says

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def during_the_deferred_pass(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], Any]) -> tuple[ConsumerRunner, Any]:
    """Run one workflow batch in a thread of its own and, once its commands have
    decided and before anything is written, ``meanwhile`` here; the runner after
    its batch (which must not have failed) and what ``meanwhile`` returned."""
    decided, go_on = threading.Event(), threading.Event()
    flush = DeferredAppends.flush

    def paused(self: DeferredAppends) -> None:
        if self.pending:
            decided.set()
            assert go_on.wait(10)
        flush(self)

    monkeypatch.setattr(DeferredAppends, "flush", paused)
    runner = workflow()
    assert runner.acquire_lease()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            runner.process_batch()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failed.append(exc)
        finally:
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    try:
        assert decided.wait(10)
        result = meanwhile()
    finally:
        go_on.set()
        t.join()
    assert not failed
    assert runner.cursor is not None  # the batch committed: its checkpoint moved
    return runner, result


def _types(customer_id: str) -> list[str]:
    return [r.event_type for r in EventStore().read_stream(stream_id(uuid.UUID(customer_id)))]


def _log() -> list[Any]:
    return list(EventStore().read_all(Cursor.start(), limit=10_000))


def test_while_the_workflow_decides_the_log_is_read_past_it(customer, monkeypatch):
    customer_says(customer.id, "Hello?")
    pipeline().catch_up()

    def append_and_read() -> tuple[Any, list[str]]:
        late = EventStore().append("written-meanwhile", [noted()], 0)[0]
        return late, [r.stream_id for r in _log()]

    _, (late, seen) = during_the_deferred_pass(monkeypatch, append_and_read)
    assert seen[-1] == "written-meanwhile"
    # What the workflow decided is in the log, once, after what was written meanwhile.
    [decided] = [r for r in _log() if r.event_type == "FirstResponseClockStarted"]
    assert decided.position > late.position


def test_a_claim_between_the_decisions_and_their_writing_is_kept_and_the_batch_decided_again(
        customer, make_agent, monkeypatch, caplog):
    caplog.set_level("INFO", logger="conversations.process_manager")
    grace = make_agent()
    customer_says(customer.id, "Hello?")
    pipeline().catch_up()
    # The conversation moves under the deferred decisions: their versions are taken.
    during_the_deferred_pass(monkeypatch, lambda: handlers.claim(Claim(uuid.UUID(customer.id), Agent(grace.id, "Grace"))))
    assert "deciding again" in caplog.text  # the deferred pass met the claim and was undone
    # The claim stands, and the workflow's decision was made again on top of it, once.
    types = _types(customer.id)
    assert types.count("ConversationAssigned") == 1
    assert types.count("FirstResponseClockStarted") == 1
    versions = [r.version for r in EventStore().read_stream(stream_id(uuid.UUID(customer.id)))]
    assert versions == list(range(1, len(versions) + 1))


def test_a_customer_erased_between_the_decisions_and_their_writing_stops_nothing(customer, make_customer, monkeypatch):
    from project.privacy import erase_customer

    other = make_customer()
    customer_says(customer.id, "Hello?")
    customer_says(other.id, "Anyone?")
    pipeline().catch_up()
    erased = during_the_deferred_pass(
        monkeypatch, lambda: erase_customer(uuid.UUID(customer.id), reason="request", actor="test"))[1]
    assert erased
    # The batch went through: nothing more decided about the erased customer, the other one served.
    assert _types(other.id).count("FirstResponseClockStarted") == 1
