"""Checkpointed consumers of the log and the loop that feeds them.

A consumer (a projection, a process manager, the real-time fan-out) gets
the log in reading order, in batches. Consumers run in a *group* that
shares one checkpoint: each batch is read once, every consumer of the
group handles it inside one transaction, and the checkpoint moves in that
same transaction. A crash anywhere redoes the whole batch for every member
and never leaves half of it applied. What must leave the process (frames to
websockets, a wake-up for push delivery) is returned from ``handle`` and
performed by ``after_commit`` once the transaction has committed.

A group may *follow* another (``follows``): it reads the log only up to the
other group's checkpoint, so what that group wrote for an event (the read
models as of it, readmodels.asof) is there when it handles the event. The
process managers that send things follow the read models' group this way,
each in a group of its own, so a failure in one stalls that one alone.

A group that cannot process an event stalls on it, alone: it retries with
a backoff, records the event and the error on its checkpoint row (what
``readmodels_status``, /healthz and /metrics report), and an operator may
*park* the event for that group (``park_event``, eventstore.groups): the
group then skips it, and ``replay_parked`` hands it over again once the
code is fixed. Events parked for the group a group follows are skipped too:
what that group did not write for them cannot be read.

One instance per group is active at a time. Instances compete for a lease
on the checkpoint row; the holder keeps its cursor in memory, and every
batch transaction starts by locking the checkpoint row and checking that
it still owns it at that cursor. So an instance that lost its lease without
noticing cannot commit a batch twice, and anything that must stop the group
for a moment (a read-model rebuild swapping its tables in) takes the same
row lock. The lease is extended by every batch's checkpoint update; an idle
holder renews it once half of it has passed.

``Worker`` (workers.worker) runs a group forever on an asyncio loop.

Cost per batch: one transaction (read, lock, the consumers' statements,
checkpoint update). An idle group costs its fallback poll and its lease
renewal: wake-ups, not polls, bring new events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, transaction

from eventstore import failures, statistics
from eventstore.commits import relax_commits
from eventstore.events import Cursor, RecordedEvent, Undecodable
from eventstore.models import Checkpoint, Parked
from eventstore.partitions import Partition
from eventstore.reading import Batch
from eventstore.store import EventStore, mark_replay_transaction, no_appends_statement, replaying
from eventstore.unit import Unit

log = logging.getLogger(__name__)


class Consumer(Protocol):
    """What the runner needs from a consumer of the log."""

    @property
    def name(self) -> str:
        """Unique, stable name (the checkpoint's name when it runs alone)."""

    @property
    def event_types(self) -> Collection[str] | None:
        """Event types it handles; None for all. It is handed only these."""

    def handle(self, batch: Batch) -> Any:
        """Apply a batch inside the runner's transaction; return effects for after_commit.

        ``batch.events`` holds only this consumer's event types (possibly
        none); ``batch.start``/``batch.end`` span every row the group read.
        A consumer may also define ``prepare(batch)``, called before any
        ``handle``, to ask ``batch.unit`` for the rows it will read: the unit
        loads every consumer's rows at once (eventstore.unit).
        """

    def reset(self) -> None:
        """Delete everything this consumer built (inside a transaction), for a rebuild."""

    async def after_commit(self, effects: Any) -> None:
        """Perform effects that must not happen before commit (may be a no-op)."""


class LostLease(Exception):
    """Another instance owns this group, or moved its checkpoint."""


class UndecodableEvent(Exception):
    """The batch holds an event of a type the group wants that cannot be decoded."""

    def __init__(self, r: RecordedEvent) -> None:
        assert isinstance(r.event, Undecodable)
        super().__init__(f"event {r.event_id} at position {r.position} ({r.event_type}) cannot be decoded: {r.event.error}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _ts(value: dt.datetime) -> Any:
    """A time as this database stores it (SQLite: naive UTC text, as Django writes it)."""
    return connection.ops.adapt_datetimefield_value(value)


def make_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def checkpoint_cursor(name: str) -> Cursor:
    """The committed cursor of a consumer group (the start if it never ran)."""
    with connection.cursor() as c:
        c.execute("SELECT tx, position FROM parley_checkpoints WHERE name = %s", [name])
        row = c.fetchone()
    return Cursor(int(row[0]), int(row[1])) if row else Cursor.start()


@dataclass
class Progress:
    """What one call of ``process_batch`` did."""

    handled: int = 0  # events handed to consumers
    moved: bool = False  # the checkpoint advanced
    blocked: bool = False  # committed events wait behind the read barrier: look again soon
    full: bool = False  # the batch was as large as allowed: more may follow at once
    effects: list[tuple[Consumer, Any]] = field(default_factory=list)
    span: tuple[Cursor, Cursor] | None = None  # (start, end) of the batch the effects come from


def _without(batch: Batch, skipped: Collection[uuid.UUID]) -> Batch:
    """The batch without the events parked for the group (its span stays: the checkpoint moves past them)."""
    kept = [r for r in batch.events if r.event_id not in skipped]
    return Batch(kept, batch.start, batch.end, batch.blocked, batch.unit, batch.scanned)


def _view(batch: Batch, types: Collection[str] | None, unit: Unit) -> Batch:
    events = batch.events if types is None else [e for e in batch.events if e.event_type in types]
    return Batch(events, batch.start, batch.end, batch.blocked, unit, batch.scanned)


class ConsumerRunner:
    """Feeds a group of consumers (or one) from the log under one checkpoint.

    Synchronous core, used by tests, commands and the async ``Worker`` alike.
    """

    def __init__(
        self,
        consumers: Consumer | Sequence[Consumer],
        store: EventStore | None = None,
        *,
        name: str | None = None,
        owner: str | None = None,
        batch_size: int = 500,
        derived_only: bool = False,
        follows: str | None = None,
        partition: Partition | None = None,
        appends: bool = True,
        paced: bool | None = None,
    ) -> None:
        self.consumers: list[Consumer] = list(consumers) if isinstance(consumers, Sequence) else [consumers]
        #: The group writes nothing the log cannot give again: its commits need
        #: not wait for the disk (see process_batch).
        self.derived_only = derived_only
        #: Whether the group's members may append events. A group that does not
        #: marks its batch transactions so (eventstore.store.mark_replay_transaction),
        #: and readers of the log, the read models among them, do not wait for
        #: them; ``append`` refuses during its batches.
        self.appends = appends
        #: The group takes a batch at most every ``PARLEY_FOLLOWER_INTERVAL`` seconds
        #: (workers.worker), so that under load one transaction handles many events
        #: (default: the groups that follow another).
        self.paced = paced if paced is not None else follows is not None
        if not self.consumers:
            raise ValueError("a runner needs at least one consumer")
        #: The part of the log this runner reads (None: all of it); its checkpoint
        #: is the group's name with the partition's suffix (eventstore.partitions).
        self.partition = partition if partition is not None and partition.count > 1 else None
        suffix = self.partition.suffix() if self.partition is not None else ""
        #: The group's name, without the partition.
        self.group = name or self.consumers[0].name
        self.name = self.group + suffix
        self.store = store or EventStore()
        #: The group this one reads behind, the same partition of it (None: it reads up to the end of the log).
        self.follows = follows + suffix if follows else None
        self.follows_group = follows
        self.owner = owner or make_owner_id()
        self.batch_size = batch_size
        #: The event types any member wants (None: every type). The others
        #: are scanned past, not decoded: a group of process managers that
        #: want a few types does not pay for the rest of the log.
        wanted = [c.event_types for c in self.consumers]
        self.event_types: frozenset[str] | None = (
            None if any(w is None for w in wanted) else frozenset().union(*wanted)  # type: ignore[arg-type]
        )
        #: The checkpoint this instance holds the lease at (None: no lease).
        self.cursor: Cursor | None = None
        self.lease_until: dt.datetime | None = None
        #: After a batch failed: the end of that batch, up to which events are
        #: processed one per batch, so that a failure names its event.
        self.isolating: Cursor | None = None
        #: Ids of the events parked for this group (or the one it follows): skipped.
        self.parked: frozenset[uuid.UUID] = frozenset()
        #: The checkpoint row records an error to clear with the next batch that goes through.
        self._erring = False

    @property
    def consumer(self) -> Consumer:
        """The first (for a runner of one consumer: the only) consumer."""
        return self.consumers[0]

    # -- lease -----------------------------------------------------------

    def acquire_lease(self) -> bool:
        """Take (or renew) the lease; False while another live instance holds it."""
        now = _now()
        until = now + dt.timedelta(seconds=settings.PARLEY_LEASE_SECONDS)
        with connection.cursor() as c:
            c.execute(
                "INSERT INTO parley_checkpoints (name, tx, position, owner, updated_at) VALUES (%s, 0, 0, '', %s) "
                "ON CONFLICT (name) DO NOTHING",
                [self.name, _ts(now)],
            )
            c.execute(
                "UPDATE parley_checkpoints SET owner = %s, lease_until = %s, updated_at = %s "
                "WHERE name = %s AND (owner = %s OR owner = '' OR lease_until IS NULL OR lease_until < %s) "
                "RETURNING tx, position",
                [self.owner, _ts(until), _ts(now), self.name, self.owner, _ts(now)],
            )
            row = c.fetchone()
        if row is None:
            self.cursor = None
            return False
        if self.cursor is None:  # taken now, not renewed: a start, or a takeover
            self._load_parked()
            log.info("consumer %s: lease taken by %s at position %s", self.name, self.owner, row[1],
                     extra={"consumer": self.name, "owner": self.owner, "position": int(row[1])})
        self.cursor, self.lease_until = Cursor(int(row[0]), int(row[1])), until
        return True

    def _renew_if_due(self, now: dt.datetime, until: dt.datetime) -> None:
        """Extend the lease once half of it has passed (inside the caller's transaction)."""
        half = dt.timedelta(seconds=settings.PARLEY_LEASE_SECONDS / 2)
        if self.lease_until is not None and now < self.lease_until - half:
            return
        with connection.cursor() as c:
            c.execute(
                "UPDATE parley_checkpoints SET lease_until = %s, updated_at = %s WHERE name = %s AND owner = %s",
                [_ts(until), _ts(now), self.name, self.owner],
            )
            if c.rowcount != 1:
                raise LostLease(self.name)
        self.lease_until = until

    def _load_parked(self) -> None:
        # Parked by group, whatever the partition holding the event (eventstore.groups.park).
        groups = [self.group] + ([self.follows_group] if self.follows_group else [])
        self.parked = frozenset(
            Parked.objects.filter(consumer_group__in=groups, replayed_at__isnull=True).values_list("event_id", flat=True)
        )
        self._erring = Checkpoint.objects.filter(name=self.name, error_event_id__isnull=False).exists()

    def _record_error(self, r: RecordedEvent, member: str, exc: BaseException) -> None:
        """Say on the checkpoint row which event the group is stuck on (outside the failed transaction)."""
        try:
            Checkpoint.objects.filter(name=self.name).update(
                error_event_id=r.event_id, error_position=r.position, error_member=member,
                error_detail=f"{type(exc).__name__}: {exc}"[:2000], error_at=_now(),
            )
            self._erring = True
        except Exception:  # the database may be what failed: the log has the error anyway
            log.warning("consumer %s: could not record its error on the checkpoint", self.name, exc_info=True)

    def holds_lease(self) -> bool:
        """Whether this instance holds the lease as far as it knows (no database
        read): it took it, and it has not run out since. Another instance can
        take it only once it has run out."""
        return self.cursor is not None and self.lease_until is not None and self.lease_until > _now()

    def release_lease(self) -> None:
        Checkpoint.objects.filter(name=self.name, owner=self.owner).update(owner="", lease_until=None)
        self.cursor = self.lease_until = None

    # -- processing --------------------------------------------------------

    def process_batch(self) -> Progress:
        """Apply the next batch and advance the checkpoint, in one transaction.

        The consumers that declare ``prepare`` say which rows they need; the
        batch's unit of work reads them (with the checkpoint lock, in one
        round), every consumer handles the batch, and the unit writes every
        change and the new checkpoint in one more round. Raises LostLease,
        leaving nothing behind, if this instance may not commit (then
        ``cursor`` is None until the lease is acquired again).

        A batch that fails is logged with its consumer and events
        (eventstore.failures) and rolled back whole; the batches that
        follow, up to its end, hold one event each, so that the next
        failure names the very event a consumer cannot process.
        """
        if self.cursor is None:
            raise LostLease(self.name)
        start = self.cursor
        now = _now()
        until = now + dt.timedelta(seconds=settings.PARLEY_LEASE_SECONDS)
        limit = 1 if self.isolating is not None and start < self.isolating else self.batch_size
        batch: Batch | None = None
        member: Consumer | None = None  # the consumer running when something raised
        try:
            if self.derived_only:
                # Everything this group writes (rows and checkpoint together)
                # follows from the log, whose appends are durable: if a
                # database crash loses the last moment of such commits, the
                # checkpoint goes back with the rows and the same batches are
                # applied again. So its commits need not wait for the disk.
                relax_commits()
            with transaction.atomic():
                # Read first: an empty read takes no lock and writes nothing.
                batch = self.store.read_batch(start, limit, types=self.event_types, until_checkpoint=self.follows,
                                              partition=self.partition)
                if batch.end == start:
                    self._renew_if_due(now, until)  # an idle holder's only write
                    return Progress(blocked=batch.blocked)
                if self.parked:
                    batch = _without(batch, self.parked)
                for r in batch.events:
                    if isinstance(r.event, Undecodable):
                        raise UndecodableEvent(r)
                unit = Unit()
                views = [(c, _view(batch, c.event_types, unit)) for c in self.consumers]
                for member, view in views:
                    prepare = getattr(member, "prepare", None)
                    if prepare is not None:
                        prepare(view)
                member = None
                # A group that appends nothing says so before its lock gives its transaction an id.
                mark = None if self.appends else no_appends_statement()
                *_, locked = unit.load(before=[mark, self._lock_sql()] if mark else [self._lock_sql()])
                self._check_lock(locked, start)
                if not self.appends:
                    replaying.active = True
                effects = []
                for member, view in views:
                    effects.append((member, member.handle(view)))
                member = None
                clear = (
                    ", error_event_id = NULL, error_position = NULL, error_member = '', error_detail = '', error_at = NULL"
                    if self._erring else ""
                )
                # A group that appends checks its checkpoint again as it moves it
                # (see _lock_sql): still this instance's, still where the batch began.
                unit.then(
                    f"UPDATE parley_checkpoints SET tx = %s, position = %s, lease_until = %s, updated_at = %s{clear} "
                    "WHERE name = %s AND owner = %s AND tx = %s AND position = %s RETURNING 1",
                    [batch.end.tx, batch.end.position, _ts(until), _ts(now), self.name, self.owner,
                     start.tx, start.position],
                    returning=True,
                )
                (moved,) = unit.flush()
                if not moved:
                    raise LostLease(self.name)
        except LostLease:
            log.warning("consumer %s: lease lost by %s (another instance took over)", self.name, self.owner,
                        extra={"consumer": self.name, "owner": self.owner})
            self.cursor = None
            raise
        except Exception as exc:
            if batch is not None and batch.events:
                culprit = member.name if member is not None else self.name
                failures.batch_failed(self.name, culprit, batch, exc)
                if len(batch.events) > 1:
                    self.isolating = max(self.isolating or batch.end, batch.end)
                else:
                    self._record_error(batch.events[0], culprit, exc)
            try:
                self._load_parked()  # an operator may have parked the event meanwhile
            except Exception:
                pass
            raise
        finally:
            if not self.appends:
                replaying.active = False
        self._erring = False
        if self.isolating is not None and batch.end >= self.isolating:
            self.isolating = None
        self.cursor, self.lease_until = batch.end, until
        try:
            statistics.grew(unit.grown, connection.vendor)
        except Exception:  # the batch is committed: nothing here may fail it
            log.warning("consumer %s: its rows' growth could not be counted", self.name, exc_info=True)
        return Progress(
            len(batch.events), True, batch.blocked, batch.scanned >= limit, effects, (batch.start, batch.end)
        )

    def _lock_sql(self) -> tuple[str, list[Any]]:
        """The checkpoint as the batch begins, locked until commit on PostgreSQL, except
        for a group that appends.

        A row lock gives the transaction an id, and every reader of the log
        waits behind a transaction id that may still append (the read
        barrier, eventstore.reading): a group that appends would hold back the
        read models, and so every live frame, for the whole of each of its
        batches. Its batch reads the checkpoint unlocked instead and moves it
        with a compare-and-set (process_batch: the same owner and cursor, or
        LostLease and nothing of the batch stays), so its transaction has an id
        only from its first write, and most of its batches write nothing
        before their last round trip. The groups that append nothing are not
        waited for (no_appends_statement): they keep the lock, which a rebuild
        takes too to hold them off (readmodels.rebuild).
        """
        lock = " FOR UPDATE" if connection.vendor == "postgresql" and not self.appends else ""
        return f"SELECT tx, position, owner FROM parley_checkpoints WHERE name = %s{lock}", [self.name]

    def _check_lock(self, rows: list[tuple[Any, ...]], start: Cursor) -> None:
        """This instance must still own the checkpoint, at ``start``."""
        if not rows or rows[0][2] != self.owner or Cursor(int(rows[0][0]), int(rows[0][1])) != start:
            raise LostLease(self.name)

    #: Seconds catch_up waits at most for committed events held behind a transaction still open.
    BLOCKED_PATIENCE = 5.0

    def _keep_waiting(self, progress: Progress, deadline: float | None) -> float | None:
        """After a batch that did not move: the time until which to keep waiting for
        committed events held behind an open transaction, or None to stop here."""
        if not progress.blocked:
            return None
        deadline = deadline or time.monotonic() + self.BLOCKED_PATIENCE
        return deadline if time.monotonic() < deadline else None

    def catch_up(self, max_batches: int = 1_000_000) -> int:
        """Process until the log is exhausted (synchronously); returns events handled.

        Committed events that wait behind another transaction still open
        (the read barrier) are part of the log as it is now: catch_up waits
        for that transaction, up to BLOCKED_PATIENCE seconds, rather than
        stop short of them.

        Effects are performed on a private event loop: meant for tests,
        commands and rebuilds, not for the server's loop.
        """
        if not self.acquire_lease():
            raise LostLease(self.name)
        total = 0
        deadline: float | None = None
        try:
            for _ in range(max_batches):
                progress = self.process_batch()
                if not progress.moved:
                    deadline = self._keep_waiting(progress, deadline)
                    if deadline is None:
                        break
                    time.sleep(0.005)
                    continue
                deadline = None
                total += progress.handled
                if progress.effects:
                    asyncio.run(after_commit(progress.effects, self.name, progress.span))
        finally:
            self.release_lease()
        return total

    async def catch_up_async(self) -> int:
        """catch_up() for a running event loop: effects go out on that loop."""
        from asgiref.sync import sync_to_async

        if not await sync_to_async(self.acquire_lease, thread_sensitive=True)():
            raise LostLease(self.name)
        total = 0
        try:
            deadline: float | None = None
            while True:
                progress = await sync_to_async(self.process_batch, thread_sensitive=True)()
                if not progress.moved:
                    deadline = self._keep_waiting(progress, deadline)
                    if deadline is None:
                        return total
                    await asyncio.sleep(0.005)
                    continue
                deadline = None
                total += progress.handled
                await after_commit(progress.effects, self.name, progress.span)
        finally:
            await sync_to_async(self.release_lease, thread_sensitive=True)()

    def rebuild(self, batch_size: int = 5000) -> int:
        """Reset the consumers and replay the whole log in one transaction.

        Readers keep seeing the old tables until the commit swaps the new
        ones in. The group stands still meanwhile (this holds its lease); the
        read models use ``readmodels.rebuild`` instead, which builds beside
        the live tables and keeps the group running.
        """
        live_batch, self.batch_size = self.batch_size, batch_size
        if not self.acquire_lease():
            raise LostLease(self.name)
        total = 0
        try:
            with transaction.atomic():
                mark_replay_transaction()  # live readers need not wait for this long transaction
                replaying.active = True
                for consumer in self.consumers:
                    consumer.reset()
                Checkpoint.objects.filter(name=self.name).update(tx=0, position=0)
                self.cursor = Cursor.start()
                while True:
                    progress = self.process_batch()  # effects are history: not re-sent
                    if not progress.moved:
                        break
                    total += progress.handled
        finally:
            replaying.active = False
            self.batch_size = live_batch
            self.release_lease()
        return total


    def replay_parked(self) -> int:
        """Hand each event parked for this group to its members again, alone, in log
        order; mark it replayed. Returns how many went through.

        For groups whose members do not depend on the order of the events
        they are given (process managers: each event's work is keyed by the
        event). The checkpoint does not move. An event that fails again stays
        parked, and the replay stops there (the error is raised).
        """
        pending = {p.event_id: p for p in Parked.objects.filter(consumer_group=self.group, replayed_at__isnull=True)}
        done = 0
        for r in self.store.read_events(list(pending)):
            if self.partition is not None and not self.partition.holds(r.shard):
                continue  # another partition's runner replays it
            with transaction.atomic():
                unit = Unit()
                batch = Batch([r], r.cursor, r.cursor, unit=unit)
                views = [(c, _view(batch, c.event_types, unit)) for c in self.consumers]
                for member, view in views:
                    prepare = getattr(member, "prepare", None)
                    if prepare is not None:
                        prepare(view)
                unit.load()
                effects = [(member, member.handle(view)) for member, view in views]
                unit.flush()
                Parked.objects.filter(pk=pending[r.event_id].pk).update(replayed_at=_now())
            asyncio.run(after_commit(effects, self.name, (r.cursor, r.cursor)))
            done += 1
        return done


async def after_commit(effects: list[tuple[Consumer, Any]], group: str, span: tuple[Cursor, Cursor] | None) -> None:
    for consumer, effect in effects:
        try:
            await consumer.after_commit(effect)
        except Exception:  # the batch is committed; its effects are best effort
            failures.effects_failed(group, consumer.name, span)
