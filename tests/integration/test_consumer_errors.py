"""A consumer's failure names its group, member, event id and position, as fields and in the message."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from prometheus_client import REGISTRY

from eventstore.events import Cursor, RecordedEvent
from eventstore.models import Checkpoint, StoredEvent
from eventstore.runner import ConsumerRunner
from eventstore.store import EventStore
from observability.logs import mark_reported
from realtime.dispatcher import Dispatcher
from realtime.frames import AGENTS, Envelope
from realtime.logtail import db
from tests.eventstore_fixtures import noted
from tests.integration.test_runner import Recorder, append_many, applied, applied_table  # noqa: F401  (fixture)
from workers.loop import run_forever

pytestmark = pytest.mark.django_db(transaction=True)


def errors(group: str, member: str) -> float:
    return REGISTRY.get_sample_value("parley_consumer_errors_total", {"consumer": group, "member": member}) or 0.0


def test_a_failing_member_is_narrowed_down_to_the_event_it_fails_on(applied_table, caplog):
    positions = append_many(6)
    poison = positions[3]
    runner = ConsumerRunner(
        [Recorder(name="fine", owner="fine"), Recorder(name="picky", owner="picky", fail_at=poison)],
        name="group",
        batch_size=10,
    )
    before = errors("group", "picky")

    # The first failure can only name the batch: all six events, rolled back.
    with caplog.at_level(logging.ERROR, logger="eventstore.runner"), pytest.raises(RuntimeError):
        runner.catch_up()
    [batch] = caplog.records
    assert (batch.consumer, batch.member, batch.position, batch.last_position, batch.events) == (
        "group", "picky", positions[0], positions[-1], 6,
    )
    assert applied() == []

    # The retry goes one event at a time: the three before it commit, and the
    # failure names the one event the member cannot process.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="eventstore.runner"), pytest.raises(RuntimeError):
        runner.catch_up()
    [record] = caplog.records
    event_id = str(StoredEvent.objects.get(position=poison).event_id)
    assert (record.consumer, record.member, record.event_id, record.position) == ("group", "picky", event_id, poison)
    assert event_id in record.getMessage() and f"position {poison}" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert sorted(p for p, _ in applied()) == sorted(positions[:3] * 2)
    assert Checkpoint.objects.get(name="group").position == positions[2]
    assert errors("group", "picky") == before + 2

    # Once the member is fixed, the rest goes through and batches are whole again.
    runner.consumers[1] = Recorder(name="picky", owner="picky")
    assert runner.catch_up() == 3
    assert runner.isolating is None
    append_many(4)
    assert runner.acquire_lease()
    assert runner.process_batch().handled == 4
    runner.release_lease()


def test_the_workers_loop_does_not_print_a_reported_failure_twice(caplog):
    async def main() -> None:
        stop, calls = asyncio.Event(), []

        async def step() -> float:
            calls.append(1)
            if len(calls) == 1:
                exc = RuntimeError("already logged with its event")
                mark_reported(exc)
                raise exc
            if len(calls) == 2:
                raise RuntimeError("nobody logged this one")
            stop.set()
            return 0

        await run_forever(step, wake=asyncio.Event(), stop=stop, idle=1, name="consumer test")

    with caplog.at_level(logging.WARNING, logger="workers.loop"):
        asyncio.run(main())
    reported, unreported = caplog.records
    assert reported.levelno == logging.WARNING and reported.exc_info is None
    assert "logged above" in reported.getMessage()
    assert unreported.levelno == logging.ERROR and unreported.exc_info is not None


class BrokenSocket:
    """A socket whose sends raise (the client vanished mid-frame)."""

    audience = AGENTS
    listener_id = "broken"
    principal = None

    def __init__(self) -> None:
        self.resyncs = 0

    async def offer(self, cursor: Cursor, frames: tuple[str, ...]) -> None:
        raise ConnectionResetError("the socket is gone")

    async def send_text(self, text: str) -> None:
        raise ConnectionResetError("the socket is gone")

    async def resync(self) -> None:
        self.resyncs += 1

    async def revoke(self, detail: str) -> None:
        return None


@pytest.fixture
def recorded() -> RecordedEvent:
    return EventStore().append(f"s-{uuid.uuid4()}", [noted()], 0)[0]


async def test_a_socket_that_fails_to_take_an_event_is_logged_with_the_event_and_its_frames_count_dropped(
    recorded, caplog
):
    dropped = REGISTRY.get_sample_value("parley_websocket_frames_dropped_total", {"reason": "socket_failed"}) or 0.0
    dispatcher = Dispatcher()
    dispatcher.cursor = Cursor.start()
    socket = BrokenSocket()
    dispatcher.audiences[AGENTS].add(socket)
    try:
        with caplog.at_level(logging.ERROR, logger="realtime.logtail"):
            await dispatcher._hand_on(Envelope(recorded.cursor, str(uuid.uuid4()), (), ('{"a":1}', '{"b":2}')))
    finally:
        await asyncio.to_thread(db.close_connections)
    [record] = caplog.records
    assert (record.consumer, record.event_id, record.position) == (
        "realtime-dispatcher", str(recorded.event_id), recorded.position,
    )
    assert str(recorded.event_id) in record.getMessage() and f"position {recorded.position}" in record.getMessage()
    assert socket.resyncs == 1 and dispatcher.stats.resyncs == 1
    after = REGISTRY.get_sample_value("parley_websocket_frames_dropped_total", {"reason": "socket_failed"})
    assert after == dropped + 2
