"""Gap-freedom of the log on PostgreSQL under real concurrent writers."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from eventstore.events import Cursor
from eventstore.store import EventStore
from tests.eventstore_fixtures import noted

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRITERS = 8
PER_WRITER = 60


def _in_thread(fn, *args):
    try:
        fn(*args)
    finally:
        connection.close()


def test_a_tailing_reader_sees_every_event_of_eight_writers_exactly_once_in_order():
    store = EventStore()
    written: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS + 1)

    def writer(n: int) -> None:
        start.wait()
        for i in range(PER_WRITER):
            # Some appends carry two events, some hold their transaction a moment.
            events = [noted(f"{n}-{i}")] + ([noted(f"{n}-{i}b")] if i % 7 == 0 else [])
            with transaction.atomic():
                recorded = store.append(f"w{n}-{i}", events, 0)
                if i % 11 == 0:
                    time.sleep(0.005)
            with lock:
                written.extend(str(r.event_id) for r in recorded)

    threads = [threading.Thread(target=_in_thread, args=(writer, n)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    start.wait()

    seen: list[str] = []
    cursors: list[Cursor] = []
    cursor = Cursor.start()
    deadline = time.monotonic() + 60
    expected_total = WRITERS * (PER_WRITER + len(range(0, PER_WRITER, 7)))
    while len(seen) < expected_total and time.monotonic() < deadline:
        for e in store.read_all(cursor, limit=37):
            seen.append(str(e.event_id))
            cursors.append(e.cursor)
            cursor = e.cursor
    for t in threads:
        t.join()
    # A reader that skipped anything would now be missing it for good.
    for e in store.read_all(cursor):
        seen.append(str(e.event_id))
        cursors.append(e.cursor)

    assert len(seen) == expected_total
    assert len(set(seen)) == len(seen), "an event was read twice"
    assert set(seen) == set(written)
    assert cursors == sorted(cursors), "tail order is not the reading order"
    assert [str(e.event_id) for e in store.read_all(Cursor.start(), limit=10_000)] == seen


def test_a_reader_waits_for_an_uncommitted_append_instead_of_skipping_it():
    store = EventStore()
    appended = threading.Event()
    release = threading.Event()
    slow: dict[str, object] = {}

    def slow_writer() -> None:
        with transaction.atomic():
            slow["event"] = store.append("slow", [noted("slow")], 0)[0]
            appended.set()
            release.wait(10)

    t = threading.Thread(target=_in_thread, args=(slow_writer,))
    t.start()
    assert appended.wait(10)
    fast = store.append("fast", [noted("fast")], 0)[0]  # commits at once
    assert fast.position > slow["event"].position  # type: ignore[attr-defined]

    # The fast event is committed, but reading it now would pass the slow one.
    assert store.read_all(Cursor.start()) == []

    release.set()
    t.join()
    got = store.read_all(Cursor.start())
    assert [e.stream_id for e in got] == ["slow", "fast"]


def test_catch_up_waits_for_committed_events_held_behind_an_open_transaction():
    """``catch_up`` (commands, tests) takes the log as it is now: an event committed
    behind a transaction still open is waited for, not left for later."""
    from eventstore.runner import ConsumerRunner

    store = EventStore()
    seen: list[str] = []

    class Recorder:
        name = "recorder"
        event_types = None

        def handle(self, batch):
            seen.extend(r.stream_id for r in batch.events)

        async def after_commit(self, effects):
            return None

    appended, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with transaction.atomic():
            store.append("slow", [noted()], 0)
            appended.set()
            release.wait(10)

    t = threading.Thread(target=_in_thread, args=(slow_writer,))
    t.start()
    assert appended.wait(10)
    store.append("fast", [noted()], 0)  # committed, but behind the slow one
    threading.Timer(0.3, release.set).start()
    handled = ConsumerRunner(Recorder()).catch_up()
    t.join()
    assert (handled, seen) == (2, ["slow", "fast"])


def test_appends_to_different_streams_do_not_wait_for_each_other():
    """The barrier holds readers back, never writers: a second writer commits
    while the first still holds its transaction open."""
    store = EventStore()
    holding = threading.Event()
    release = threading.Event()
    released_by_other_writer: list[bool] = []

    def holder() -> None:
        with transaction.atomic():
            store.append("held", [noted()], 0)
            holding.set()
            # True only if the other writer finished while we held our transaction.
            released_by_other_writer.append(release.wait(10))

    t = threading.Thread(target=_in_thread, args=(holder,))
    t.start()
    assert holding.wait(10)
    store.append("free", [noted()], 0)
    release.set()
    t.join()
    assert released_by_other_writer == [True]


def test_a_long_transaction_in_another_database_does_not_hold_readers_back():
    import os

    import psycopg

    store = EventStore()
    base = os.environ["DATABASE_URL"]  # the cluster's own database, not the test database
    with psycopg.connect(base) as other:
        other.execute("SELECT pg_current_xact_id()")  # takes an xid and keeps its transaction open
        appended = store.append("while-other-db-busy", [noted()], 0)[0]
        assert [e.event_id for e in store.read_all(Cursor.start())] == [appended.event_id]
        other.rollback()


def test_a_rebuild_in_progress_does_not_hold_live_readers_back():
    from eventstore.runner import ConsumerRunner

    store = EventStore()
    store.append("before", [noted()], 0)
    inside = threading.Event()
    release = threading.Event()
    seen_by_reader: list[str] = []

    class SlowProjection:
        name = "slow"
        event_types = None

        def handle(self, batch):
            inside.set()
            release.wait(10)

        def reset(self):
            with connection.cursor() as c:
                c.execute("SELECT pg_current_xact_id()")  # a writing transaction, like a real reset

        async def after_commit(self, effects):
            return None

    t = threading.Thread(target=_in_thread, args=(ConsumerRunner(SlowProjection()).rebuild,))
    t.start()
    assert inside.wait(10)
    late = store.append("during-rebuild", [noted()], 0)[0]
    seen_by_reader = [e.stream_id for e in store.read_all(Cursor.start())]
    release.set()
    t.join()
    assert seen_by_reader == ["before", "during-rebuild"]
    assert late.position > 0


def _batch_in_progress_then_read(*, appends: bool, writes_first: bool = False) -> tuple[list[str], list[str]]:
    """A group's batch holds its transaction open while another writer appends and
    commits; what a reader of the log sees meanwhile, and after. ``writes_first``: the
    member appends an event of its own before it waits (its transaction has an id)."""
    from eventstore.runner import ConsumerRunner

    store = EventStore()
    store.append("before", [noted()], 0)
    inside, release = threading.Event(), threading.Event()

    class SlowMember:
        name = "slow-member"
        event_types = None

        def handle(self, batch):
            if writes_first:
                store.append("written-by-the-batch", [noted()], 0)
            inside.set()
            release.wait(10)

        async def after_commit(self, effects):
            return None

    runner = ConsumerRunner(SlowMember(), name="slow-group", appends=appends)
    assert runner.acquire_lease()
    t = threading.Thread(target=_in_thread, args=(runner.process_batch,))
    t.start()
    try:
        assert inside.wait(10)
        store.append("during-batch", [noted()], 0)
        during = [e.stream_id for e in store.read_all(Cursor.start())]
    finally:
        release.set()
        t.join()
    return during, [e.stream_id for e in store.read_all(Cursor.start())]


def test_a_batch_of_a_group_that_appends_nothing_does_not_hold_readers_back():
    """The read models' batch, and those of the groups that follow them, lock their
    checkpoint (a transaction id) but never append: the log is read past them."""
    during, after = _batch_in_progress_then_read(appends=False)
    assert during == ["before", "during-batch"]
    assert after == ["before", "during-batch"]


def test_a_batch_of_a_group_that_appends_holds_readers_back_from_its_first_write_until_it_ends():
    """The workflow's batch appends events with its transaction id, so readers wait for
    it once it has written; what others commit meanwhile is read after it, in order."""
    during, after = _batch_in_progress_then_read(appends=True, writes_first=True)
    assert during == ["before"]
    assert after == ["before", "written-by-the-batch", "during-batch"]


def test_a_batch_of_a_group_that_may_append_holds_nobody_back_before_it_writes():
    """Its checkpoint is read unlocked (a lock would give the transaction an id at
    once): until the batch writes, the log is read past it."""
    during, after = _batch_in_progress_then_read(appends=True)
    assert during == ["before", "during-batch"]
    assert after == ["before", "during-batch"]


def test_a_batch_of_a_group_that_appends_whose_lease_was_taken_meanwhile_leaves_nothing():
    """The unlocked checkpoint is moved with a compare-and-set: an instance that took
    the lease while the batch ran wins, and the batch's appends go with its rollback."""
    from django.db import connections

    from eventstore.runner import ConsumerRunner, LostLease

    store = EventStore()
    store.append("before", [noted()], 0)
    inside, release = threading.Event(), threading.Event()

    class Appender:
        name = "appender"
        event_types = None

        def handle(self, batch):
            store.append("written-by-the-batch", [noted()], 0)
            inside.set()
            release.wait(10)

        async def after_commit(self, effects):
            return None

    first = ConsumerRunner(Appender(), name="appender")
    assert first.acquire_lease()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            first.process_batch()
        except BaseException as exc:  # noqa: BLE001 - the thread reports it
            failed.append(exc)
        finally:
            connections.close_all()

    t = threading.Thread(target=run)
    t.start()
    try:
        assert inside.wait(10)
        with connection.cursor() as c:  # the lease ran out and another instance took it
            c.execute("UPDATE parley_checkpoints SET lease_until = now() - interval '1 second' WHERE name = 'appender'")
        second = ConsumerRunner(Appender(), name="appender")
        assert second.acquire_lease()
    finally:
        release.set()
        t.join()
    assert len(failed) == 1 and isinstance(failed[0], LostLease)
    assert first.cursor is None
    assert [e.stream_id for e in store.read_all(Cursor.start())] == ["before"]
    assert second.cursor == Cursor.start()


def test_a_group_that_appends_nothing_cannot_append_in_its_batch():
    from eventstore.runner import ConsumerRunner
    from eventstore.store import replaying

    store = EventStore()
    store.append("before", [noted()], 0)

    class Appender:
        name = "appender"
        event_types = None

        def handle(self, batch):
            store.append("sneaked-in", [noted()], 0)

        async def after_commit(self, effects):
            return None

    runner = ConsumerRunner(Appender(), name="appender", appends=False)
    assert runner.acquire_lease()
    with pytest.raises(RuntimeError, match="must not append"):
        runner.process_batch()
    assert replaying.active is False  # the thread's next transaction may append again
    assert [e.stream_id for e in store.read_all(Cursor.start())] == ["before"]


def test_the_groups_that_only_derive_rows_are_declared_so_and_the_workflow_is_not():
    from project import bootstrap

    appends = {name: bootstrap.group(name).appends for name in bootstrap.GROUPS}
    assert appends == {"pipeline": False, "workflow": True, "push": False, "webhooks": False,
                       "email-fallback": False}


def test_a_replay_transaction_cannot_append():
    from eventstore.store import replaying

    replaying.active = True
    try:
        with pytest.raises(RuntimeError):
            EventStore().append("x", [noted()], 0)
    finally:
        replaying.active = False


def test_workers_refuse_a_cluster_whose_transaction_ids_lag_the_log():
    store = EventStore()
    store.append("fine", [noted()], 0)
    store.check_transaction_ids()  # a healthy cluster passes
    with connection.cursor() as c:  # as after a pg_dump restore into a new cluster
        c.execute("UPDATE parley_events SET tx = tx + 1000000000")
    with pytest.raises(RuntimeError, match="restored into a new cluster"):
        store.check_transaction_ids()
