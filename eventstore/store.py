"""The event store: append with optimistic concurrency, read in a gap-free order.

Ordering on PostgreSQL uses a transaction-id read barrier (see design.md,
"Ordering on PostgreSQL"): each row carries the id of the transaction that
appended it, and readers only read rows whose transaction id is below the
oldest transaction still running (``pg_snapshot_xmin``), in
(transaction id, position) order. A transaction that is slow to commit holds
readers back; it can never be skipped. Writers are not serialised.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models import Max, Q

from eventstore import wakeup
from eventstore.events import (
    Cursor,
    DomainEvent,
    Metadata,
    NewEvent,
    RecordedEvent,
    decode,
    encode,
)
from eventstore.models import StoredEvent

NOTIFY_CHANNEL = "parley_events"

#: application_name of a transaction that promises never to append events
#: (a read-model rebuild): readers need not wait for it.
REPLAY_APPLICATION_NAME = "parley:replay"

# The read barrier: the oldest transaction that might still commit an event.
# pg_current_snapshot()'s in-progress list is cluster-wide, so transactions
# of other databases (and replays of our own) are dropped from it, or one
# long transaction anywhere in the cluster would stall every reader. An xid
# whose backend cannot be seen (finished meanwhile, or hidden from this
# role) is kept: that may delay a read, never make it skip. The reader's own
# xid is kept too, so a reader never passes its own uncommitted appends.
_BARRIER_SQL = f"""
tx < (
    WITH snap AS (SELECT pg_current_snapshot() AS s)
    SELECT COALESCE(min(inflight.x), (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap))
    FROM (
        SELECT xip::text::bigint AS x FROM snap, pg_snapshot_xip(snap.s) AS xip
        UNION ALL SELECT pg_current_xact_id_if_assigned()::text::bigint
    ) AS inflight
    WHERE inflight.x IS NOT NULL AND inflight.x NOT IN (
        SELECT backend_xid::text::bigint FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL
          AND (datname IS DISTINCT FROM current_database() OR application_name = '{REPLAY_APPLICATION_NAME}')
    )
)
"""


class _Replaying(threading.local):
    active = False


#: Set (per thread) while a rebuild runs; append() refuses meanwhile.
replaying = _Replaying()


def mark_replay_transaction(using: str = "default") -> None:
    """Declare the current transaction a replay: it will append no events."""
    conn = connections[using]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SET LOCAL application_name = %s", [REPLAY_APPLICATION_NAME])


def _violated_constraint(err: IntegrityError) -> str:
    """'event_id' or 'stream_version': which uniqueness an insert broke."""
    diag = getattr(err.__cause__, "diag", None)
    name = getattr(diag, "constraint_name", None) or str(err)
    return "event_id" if "event_id" in name else "stream_version"


_notifier = wakeup.PostgresNotifier(NOTIFY_CHANNEL)


class ConcurrencyConflict(Exception):
    """The stream was not at the expected version when appending."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int | None) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual_version if actual_version is not None else 'another'}, "
            f"expected {expected_version}"
        )
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class DuplicateEvent(Exception):
    """An event with this id is already in the log; nothing was appended."""

    def __init__(self, event_ids: Collection[uuid.UUID]) -> None:
        super().__init__(f"already stored: {', '.join(sorted(str(i) for i in event_ids))}")
        self.event_ids = frozenset(event_ids)


class UnknownPosition(LookupError):
    """A client handed back a position that names no event."""


@dataclass(frozen=True)
class Batch:
    """Events read after a cursor, and the cursor of the last row scanned.

    ``end`` can be past the last returned event when a type filter dropped
    rows: a consumer checkpoints at ``end`` so it never scans them again.
    """

    events: list[RecordedEvent]
    end: Cursor


_FIELDS = (
    "position",
    "tx",
    "event_id",
    "stream_id",
    "version",
    "event_type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at",
)


class EventStore:
    """Append-only log over one Django database connection alias."""

    def __init__(self, using: str = "default") -> None:
        self.using = using

    @property
    def _is_postgres(self) -> bool:
        return connections[self.using].vendor == "postgresql"

    # -- writing ---------------------------------------------------------

    def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent | NewEvent],
        expected_version: int,
        metadata: Metadata | None = None,
        *,
        savepoint: bool = True,
    ) -> list[RecordedEvent]:
        """Append ``events`` to ``stream_id`` if it is at ``expected_version``.

        Raises ConcurrencyConflict if the stream moved on, DuplicateEvent if an
        event id is already stored. Either way nothing is appended. Runs in a
        savepoint of the caller's transaction (or its own transaction), so the
        caller's transaction stays usable after a conflict. A caller that
        rolls back its whole transaction on a conflict anyway (a command
        handler) passes ``savepoint=False`` and saves two round trips; its
        transaction is then unusable after the error.
        """
        if not events:
            return []
        if replaying.active:
            raise RuntimeError("a replay transaction must not append events (readers do not wait for it)")
        metadata = metadata or Metadata()
        pending = [e if isinstance(e, NewEvent) else NewEvent(e) for e in events]
        now = dt.datetime.now(dt.timezone.utc)
        try:
            with transaction.atomic(using=self.using, savepoint=savepoint):
                if expected_version > 0 and not self._has_version(stream_id, expected_version):
                    raise ConcurrencyConflict(stream_id, expected_version, self.stream_version(stream_id))
                rows = self._insert(stream_id, pending, expected_version, metadata, now)
        except IntegrityError as err:
            if not savepoint:
                # The caller's transaction is unusable now: classify without a query.
                if _violated_constraint(err) == "event_id":
                    raise DuplicateEvent({p.event_id for p in pending}) from None
                raise ConcurrencyConflict(stream_id, expected_version, None) from None
            existing = set(
                StoredEvent.objects.using(self.using)
                .filter(event_id__in=[p.event_id for p in pending])
                .values_list("event_id", flat=True)
            )
            if existing:
                raise DuplicateEvent(existing) from None
            raise ConcurrencyConflict(stream_id, expected_version, self.stream_version(stream_id)) from None
        transaction.on_commit(self._wake, using=self.using)
        return [
            RecordedEvent(
                position=position,
                tx=tx,
                stream_id=stream_id,
                version=expected_version + i + 1,
                event_id=p.event_id,
                event=p.event,
                metadata=metadata,
                recorded_at=now,
            )
            for i, (p, (position, tx)) in enumerate(zip(pending, rows, strict=True))
        ]

    def _wake(self) -> None:
        wakeup.notify()
        _notifier.request(self.using)

    def _has_version(self, stream_id: str, version: int) -> bool:
        return StoredEvent.objects.using(self.using).filter(stream_id=stream_id, version=version).exists()

    def _insert(
        self,
        stream_id: str,
        pending: list[NewEvent],
        expected_version: int,
        metadata: Metadata,
        now: dt.datetime,
    ) -> list[tuple[int, int]]:
        conn = connections[self.using]
        meta = StoredEvent._meta
        id_field, at_field = meta.get_field("event_id"), meta.get_field("recorded_at")
        meta_json = json.dumps(metadata.as_json())
        at = at_field.get_db_prep_value(now, conn)
        params: list[Any] = []
        for i, p in enumerate(pending):
            params += [
                id_field.get_db_prep_value(p.event_id, conn),
                stream_id,
                expected_version + i + 1,
                p.event.event_type,
                p.event.schema_version,
                json.dumps(encode(p.event), separators=(",", ":")),
                meta_json,
                at,
            ]
        cols = "event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at, tx"
        tx = "pg_current_xact_id()::text::bigint" if self._is_postgres else "0"
        values = ", ".join([f"(%s, %s, %s, %s, %s, %s, %s, %s, {tx})"] * len(pending))
        sql = f"INSERT INTO parley_events ({cols}) VALUES {values} RETURNING position, tx"
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            rows = [(int(r[0]), int(r[1])) for r in cursor.fetchall()]
        rows.sort()
        return rows

    # -- reading ---------------------------------------------------------

    def check_transaction_ids(self) -> None:
        """Refuse to run on a cluster whose transaction ids lag the stored ones.

        After a pg_dump restore into a new cluster, new transactions get ids
        below those already in the log: their events would sort before every
        checkpoint and never be read. Raises RuntimeError saying what to do.
        """
        if not self._is_postgres:
            return
        with connections[self.using].cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT max(tx) FROM parley_events), pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
            )
            highest, next_xid = cursor.fetchone()
        if highest is not None and int(highest) >= int(next_xid):
            raise RuntimeError(
                f"the log holds transaction id {highest} but this cluster is at {next_xid}: "
                "it was restored into a new cluster. Advance the cluster's transaction ids past "
                "the stored ones (pg_resetwal -x, or restore with pg_upgrade/physical backups) "
                "before starting Parley's workers; see docs/operations.md."
            )

    def stream_version(self, stream_id: str) -> int:
        v = StoredEvent.objects.using(self.using).filter(stream_id=stream_id).aggregate(v=Max("version"))["v"]
        return int(v or 0)

    def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        """Every event of one stream in version order (own writes included)."""
        rows = (
            StoredEvent.objects.using(self.using)
            .filter(stream_id=stream_id)
            .order_by("version")
            .values_list(*_FIELDS)
        )
        return [self._record(r) for r in rows]

    def read_all(self, after: Cursor, limit: int = 1000) -> list[RecordedEvent]:
        """Committed events after ``after`` in reading order, never skipping one."""
        return self.read_batch(after, limit).events

    def read_batch(
        self,
        after: Cursor,
        limit: int = 1000,
        *,
        types: Collection[str] | None = None,
        until: Cursor | None = None,
    ) -> Batch:
        """Scan up to ``limit`` rows after ``after`` (and not past ``until``).

        Only events whose type is in ``types`` are decoded and returned, but
        ``end`` covers every scanned row.
        """
        qs = self._readable().extra(where=["(tx, position) > (%s, %s)"], params=[after.tx, after.position])
        if until is not None:
            qs = qs.extra(where=["(tx, position) <= (%s, %s)"], params=[until.tx, until.position])
        rows = list(qs.order_by("tx", "position").values_list(*_FIELDS)[:limit])
        if not rows:
            return Batch([], after)
        wanted = [r for r in rows if types is None or r[5] in types]
        return Batch([self._record(r) for r in wanted], Cursor(rows[-1][1], rows[-1][0]))

    def cursor_at(self, position: int) -> Cursor:
        """The reading-order cursor of the event at ``position`` (0: the start)."""
        if position == 0:
            return Cursor.start()
        tx = StoredEvent.objects.using(self.using).filter(position=position).values_list("tx", flat=True).first()
        if tx is None:
            raise UnknownPosition(position)
        return Cursor(int(tx), position)

    def head(self) -> Cursor:
        """The cursor of the last event a reader can see now."""
        row = self._readable().order_by("-tx", "-position").values_list("tx", "position").first()
        return Cursor(int(row[0]), int(row[1])) if row else Cursor.start()

    def count_after(self, after: Cursor) -> int:
        """How many readable events follow ``after`` (a consumer's lag)."""
        return self._readable().filter(Q(tx__gt=after.tx) | Q(tx=after.tx, position__gt=after.position)).count()

    def _readable(self):  # type: ignore[no-untyped-def]
        qs = StoredEvent.objects.using(self.using).all()
        if self._is_postgres:
            qs = qs.extra(where=[_BARRIER_SQL])
        return qs

    @staticmethod
    def _record(row: tuple) -> RecordedEvent:  # type: ignore[type-arg]
        position, tx, event_id, stream_id, version, event_type, schema_version, data, meta, at = row
        return RecordedEvent(
            position=int(position),
            tx=int(tx),
            stream_id=stream_id,
            version=int(version),
            event_id=event_id,
            event=decode(event_type, int(schema_version), json.loads(data)),
            metadata=Metadata.from_json(json.loads(meta)),
            recorded_at=at,
        )
