"""Checkpointed consumers: atomic batches, resumption, one active instance."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from django.conf import settings
from django.db import connection

from eventstore.models import Checkpoint
from eventstore.reading import Batch
from eventstore.runner import ConsumerRunner, LostLease
from eventstore.store import EventStore
from tests.eventstore_fixtures import noted
from workers.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def applied_table():
    with connection.cursor() as c:
        c.execute("CREATE TABLE test_applied (position BIGINT NOT NULL, owner VARCHAR(100) NOT NULL)")
    yield
    with connection.cursor() as c:
        c.execute("DROP TABLE test_applied")


def applied() -> list[tuple[int, str]]:
    with connection.cursor() as c:
        c.execute("SELECT position, owner FROM test_applied ORDER BY position")
        return [(int(p), o) for p, o in c.fetchall()]


class Recorder:
    """Writes one row per event it handles; can be told to fail mid-batch."""

    event_types = None

    def __init__(self, name: str = "recorder", owner: str = "", fail_at: int | None = None) -> None:
        self.name = name
        self.owner = owner
        self.fail_at = fail_at

    def handle(self, batch: Batch) -> None:
        with connection.cursor() as c:
            for e in batch.events:
                if self.fail_at is not None and e.position == self.fail_at:
                    raise RuntimeError("crash injected mid-batch")
                c.execute("INSERT INTO test_applied (position, owner) VALUES (%s, %s)", [e.position, self.owner])

    def reset(self) -> None:
        with connection.cursor() as c:
            c.execute("DELETE FROM test_applied")

    async def after_commit(self, effects: object) -> None:
        return None


def append_many(n: int) -> list[int]:
    store = EventStore()
    return [store.append(f"s-{uuid.uuid4()}", [noted()], 0)[0].position for _ in range(n)]


def test_a_consumer_that_raises_mid_batch_leaves_nothing_and_resumes_at_the_same_place(applied_table):
    positions = append_many(6)
    crashing = ConsumerRunner(Recorder(fail_at=positions[3]), batch_size=10)
    with pytest.raises(RuntimeError):
        crashing.catch_up()
    assert applied() == []  # the first three rows of the batch were rolled back
    assert Checkpoint.objects.get(name="recorder").position == 0

    healthy = ConsumerRunner(Recorder(), batch_size=4)
    assert healthy.catch_up() == 6
    assert [p for p, _ in applied()] == positions
    assert Checkpoint.objects.get(name="recorder").position == positions[-1]
    # Nothing new: a second catch-up applies nothing.
    assert healthy.catch_up() == 0
    assert len(applied()) == 6


def test_a_consumer_picks_up_only_what_came_after_its_checkpoint(applied_table):
    first = append_many(3)
    runner = ConsumerRunner(Recorder(), batch_size=2)
    runner.catch_up()
    second = EventStore().append("later", [noted()], 0)[0].position
    runner.catch_up()
    assert [p for p, _ in applied()] == first + [second]


def test_a_follower_never_passes_its_leaders_committed_checkpoint(applied_table):
    """The leader's checkpoint is read in the follower's own read of the log: before
    the leader has one, nothing; then exactly up to it, in batches as usual."""
    positions = append_many(5)
    follower = ConsumerRunner(Recorder(owner="f"), name="follower", owner="f", follows="lead", batch_size=2)
    assert follower.catch_up() == 0  # the leader never ran: no checkpoint, no bound, nothing read
    leader = ConsumerRunner(Recorder(name="lead", owner="lead"), name="lead", batch_size=3)
    assert leader.acquire_lease() and leader.process_batch().handled == 3
    assert follower.catch_up() == 3
    assert [p for p, o in applied() if o == "f"] == positions[:3]
    assert Checkpoint.objects.get(name="follower").position == positions[2]
    leader.catch_up()
    assert follower.catch_up() == 2
    assert [p for p, o in applied() if o == "f"] == positions


def test_a_second_instance_stands_by_while_the_first_holds_the_lease(applied_table):
    append_many(2)
    a = ConsumerRunner(Recorder(owner="a"), owner="a")
    b = ConsumerRunner(Recorder(owner="b"), owner="b")
    assert a.acquire_lease()
    assert not b.acquire_lease()
    with pytest.raises(LostLease):
        b.process_batch()
    assert applied() == []
    a.process_batch()
    a.release_lease()
    assert b.acquire_lease()


def test_a_worker_says_once_that_it_stands_by_and_again_after_it_held_the_lease(applied_table, caplog):
    append_many(2)
    holder = ConsumerRunner(Recorder(owner="a"), owner="a")
    assert holder.acquire_lease()
    waiting = Worker(ConsumerRunner(Recorder(owner="b"), owner="b"), poll_interval=0.05)

    async def steps(n: int) -> list[float]:
        return [await waiting.step() for _ in range(n)]

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "stands by" in r.getMessage()]

    try:
        with caplog.at_level("INFO", logger="workers.worker"):
            delays = asyncio.run(steps(3))
            assert len(said()) == 1 and said()[0].consumer == "recorder"  # type: ignore[attr-defined]
            assert said()[0].owner == "b"  # type: ignore[attr-defined]
            assert delays == [settings.PARLEY_LEASE_SECONDS / 3] * 3 and applied() == []

            holder.release_lease()
            caplog.clear()
            asyncio.run(steps(1))
            assert [o for _, o in applied()] == ["b", "b"]  # it took the lease and applied the log
            assert not said()

            # It loses the lease to another instance: standing by again is said again, once.
            waiting.runner.release_lease()
            assert holder.acquire_lease()
            asyncio.run(steps(2))
            assert len(said()) == 1
    finally:
        waiting._thread.close_connections()
        waiting._thread.shutdown()


def test_an_instance_that_lost_its_lease_cannot_commit_a_batch(applied_table):
    append_many(2)
    a = ConsumerRunner(Recorder(owner="a"), owner="a")
    assert a.acquire_lease()
    # b takes over after a's lease lapsed (a paused, say) and processes.
    Checkpoint.objects.filter(name="recorder").update(lease_until=None, owner="")
    b = ConsumerRunner(Recorder(owner="b"), owner="b")
    assert b.catch_up() == 2
    append_many(1)
    with pytest.raises(LostLease):
        a.process_batch()
    assert [o for _, o in applied()] == ["b", "b"]


def test_two_running_workers_for_one_consumer_never_both_process(applied_table):
    positions = append_many(40)

    async def race() -> None:
        stop = asyncio.Event()
        workers = [
            Worker(ConsumerRunner(Recorder(owner=o), owner=o, batch_size=3), poll_interval=0.05)
            for o in ("w1", "w2")
        ]
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        for _ in range(400):
            await asyncio.sleep(0.05)
            done = await asyncio.to_thread(_count_applied)
            if done >= len(positions):
                break
        # Events appended while they run are processed once too.
        await asyncio.to_thread(_append_in_thread, 5)
        for _ in range(400):
            await asyncio.sleep(0.05)
            if await asyncio.to_thread(_count_applied) >= len(positions) + 5:
                break
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(race())
    rows = applied()
    assert len(rows) == len(positions) + 5
    assert len({p for p, _ in rows}) == len(rows), "an event was applied twice"
    assert len({o for _, o in rows}) == 1, "both instances processed"


def _count_applied() -> int:
    try:
        return len(applied())
    finally:
        connection.close()


def _append_in_thread(n: int) -> None:
    try:
        store = EventStore()
        for i in range(n):
            store.append(f"late-{i}", [noted()], 0)
    finally:
        connection.close()


def test_a_leader_tells_other_processes_only_while_a_follower_is_not_held_here(applied_table, monkeypatch):
    """Followers holding their leases in the leader's process are woken in-process; the
    cross-process announcement goes out as soon as one is elsewhere, or its lease ran out."""
    import datetime as dt

    from workers import wakeup

    told: list[bool] = []
    monkeypatch.setattr(wakeup, "announce_advance", lambda group, *, elsewhere=True: told.append(elsewhere))
    leader = ConsumerRunner(Recorder(owner="a"), name="lead", owner="a")
    here = ConsumerRunner(Recorder(name="one"), name="follower-one", owner="a", follows="lead")
    there = ConsumerRunner(Recorder(name="two"), name="follower-two", owner="a", follows="lead")
    assert here.acquire_lease() and there.acquire_lease()
    worker = Worker(leader, announce=True, followers=[here, there])

    def batch() -> None:
        append_many(1)
        asyncio.run(worker.step())

    try:
        batch()  # both followers are here
        there.release_lease()
        elsewhere = ConsumerRunner(Recorder(), name="follower-two", owner="b", follows="lead")
        assert elsewhere.acquire_lease()
        batch()  # one is in another process now
        elsewhere.release_lease()
        assert there.acquire_lease()
        batch()  # back here
        here.lease_until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        batch()  # its lease ran out: another process may hold it by now
    finally:
        worker._thread.close_connections()
        worker._thread.shutdown()
    assert told == [False, True, False, True]
    assert len(applied()) == 4
