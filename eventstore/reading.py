"""Reading the event store's log in a gap-free order: ``LogReader``, ``Batch``, row decoding.

Ordering on PostgreSQL uses a transaction-id read barrier (docs/operations.md,
"Ordering on PostgreSQL"): each row carries the id of the transaction that
appended it, and readers only read rows whose transaction id is below the
oldest transaction still running, in (transaction id, position) order. A
transaction that is slow to commit holds readers back; it can never be
skipped. Writers are not serialised.

``LogReader`` is the reading half of the store: ``EventStore``
(eventstore.store) is a ``LogReader`` that also appends. It is apart from
the append path because the barrier, the reading order and the decoding of
rows into events concern readers only; the append path takes from here just
the connection, ``stream_version`` and the table's name.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from django.db import connections

from eventstore import keys
from eventstore.events import (
    Cursor,
    DomainEvent,
    Erased,
    Metadata,
    RecordedEvent,
    Undecodable,
    assemble,
    decode,
    personal_of,
    personal_types,
)
from eventstore.partitions import Partition
from eventstore.unit import Unit

TABLE = "parley_events"

# The read barrier: the oldest transaction id that might still commit an
# event, computed by the function parley_read_barrier() (migration
# eventstore 0002; a plpgsql function so that its plan is made once per
# connection). pg_current_snapshot()'s in-progress list is cluster-wide, so
# transactions of other databases (and those of our own that promised to
# append nothing: replays, and the batches of the groups that only derive
# rows, marked by eventstore.store's mark_replay_transaction) are dropped
# from it, or one long transaction anywhere in the cluster would stall
# every reader, and every batch of a group that follows the read models
# would hold back the read models themselves (migration eventstore 0009). An xid
# whose backend cannot be seen (finished meanwhile, or hidden from this
# role) is kept: that may delay a read, never make it skip. The reader's
# own xid is kept too, so a reader never passes its own uncommitted
# appends.
_BARRIER_XID = "parley_read_barrier()"

_COLUMNS = "position, tx, event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at, COALESCE(shard, 0)"
_KEY_COLUMNS = "k.subject, k.master, k.wrapped, k.erased_at"  # after _COLUMNS in a batch's rows (PostgreSQL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _subject_sql() -> str:
    """``_subject_sql_for`` the event types declared now: made once, not for every batch."""
    return _subject_sql_for(frozenset((t, d.subject) for t, d in personal_types().items()))


@functools.cache
def _subject_sql_for(declared: frozenset[tuple[str, str]]) -> str:
    """The subject of a row's event, as SQL over the row's payload text: the
    string in the field its type names (eventstore.events.Personal), as the
    store writes payloads (compact JSON), NULL for a type that carries
    nobody's data. Plain string functions, not a cast to JSON nor a pattern:
    a payload that is not JSON must not fail the read (it comes back as
    ``Undecodable``), and this runs for every row of a catch-up. What it
    finds only picks the key rows to send along: the subjects are taken from
    the decoded payloads (``_records``), and one it missed (a payload written
    otherwise) has its key read on its own. Names come from the code's
    declarations (each type with its subject's field), checked."""
    whens = []
    for event_type, subject in sorted(declared):
        if not (_IDENTIFIER.fullmatch(event_type) and _IDENTIFIER.fullmatch(subject)):
            raise ValueError(f"cannot name {event_type}.{subject} in SQL")
        whens.append(f"""WHEN '{event_type}' THEN split_part(split_part(data, '"{subject}":"', 2), '"', 1)""")
    return f"CASE event_type {' '.join(whens)} END" if whens else "NULL"


class UnknownPosition(LookupError):
    """A client handed back a position that names no event."""


@dataclass(frozen=True)
class Batch:
    """Events read after a cursor, and the cursor of the last row scanned.

    ``end`` can be past the last returned event when a type filter dropped
    rows: a consumer checkpoints at ``end`` so it never scans them again.
    ``blocked`` says that committed events follow ``end`` but may not be
    read yet, because an older transaction is still running (PostgreSQL's
    read barrier): read again in a moment, no wake-up will come for them.
    """  # noqa: D301

    events: list[RecordedEvent]
    start: Cursor
    end: Cursor
    blocked: bool = False
    #: The rows the batch's consumers read and write together (set by the runner).
    unit: Unit | None = None
    #: Rows scanned (of every type), to tell a full batch from the end of the log.
    scanned: int = 0


class LogReader:
    """Reads of the log over one Django database connection alias (``EventStore`` adds appending)."""

    def __init__(self, using: str = "default") -> None:
        self.using = using

    @property
    def _conn(self) -> Any:
        return connections[self.using]

    @property
    def _is_postgres(self) -> bool:
        return bool(self._conn.vendor == "postgresql")

    # -- reading ---------------------------------------------------------

    def check_transaction_ids(self) -> None:
        """Refuse to run on a cluster whose transaction ids lag the stored ones.

        After a pg_dump restore into a new cluster, new transactions get ids
        below those already in the log: their events would sort before every
        checkpoint and never be read. Raises RuntimeError saying what to do.
        """
        if not self._is_postgres:
            return
        with self._conn.cursor() as cursor:
            cursor.execute(
                f"SELECT (SELECT max(tx) FROM {TABLE}), pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
            )
            highest, next_xid = cursor.fetchone()
        if highest is not None and int(highest) >= int(next_xid):
            raise RuntimeError(
                f"the log holds transaction id {highest} but this cluster is at {next_xid}: "
                "it was restored into a new cluster. Advance the cluster's transaction ids past "
                "the stored ones (raise the epoch with pg_resetwal -e, or use them up) before "
                "starting Parley's workers; see docs/operations.md, \"Restoring\"."
            )

    def stream_version(self, stream_id: str) -> int:
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT max(version) FROM {TABLE} WHERE stream_id = %s", [stream_id])
            return int(cursor.fetchone()[0] or 0)

    def stream_has(self, stream_id: str, event_type: str) -> bool:
        """Whether the stream holds an event of this type (readable or not)."""
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {TABLE} WHERE stream_id = %s AND event_type = %s LIMIT 1", [stream_id, event_type])
            return cursor.fetchone() is not None

    def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        """Every event of one stream in version order (own writes included)."""
        rows = self._fetch(f"SELECT {_COLUMNS} FROM {TABLE} WHERE stream_id = %s ORDER BY version", [stream_id], prepare=True)
        return self._records(rows, strict=True)

    def read_streams(self, stream_ids: Collection[str]) -> dict[str, list[RecordedEvent]]:
        """Every event of several streams, each in version order, in one query."""
        if not stream_ids:
            return {}
        ids = list(stream_ids)
        params: list[Any]
        if self._is_postgres:
            where, params = "stream_id = ANY(%s::text[])", [ids]
        else:
            where, params = f"stream_id IN ({', '.join(['%s'] * len(ids))})", list(ids)
        rows = self._fetch(f"SELECT {_COLUMNS} FROM {TABLE} WHERE {where} ORDER BY stream_id, version", params, prepare=True)
        out: dict[str, list[RecordedEvent]] = {s: [] for s in ids}
        for row, record in zip(rows, self._records(rows, strict=True), strict=True):
            out[row[3]].append(record)
        return out

    def read_events(self, event_ids: Collection[uuid.UUID]) -> list[RecordedEvent]:
        """The events with these ids, in reading order (an operator's replay of parked events)."""
        if not event_ids:
            return []
        ids = list(event_ids)
        params: list[Any]
        if self._is_postgres:
            where, params = "event_id = ANY(%s::uuid[])", [ids]
        else:
            where, params = f"event_id IN ({', '.join(['%s'] * len(ids))})", [i.hex for i in ids]
        rows = self._fetch(f"SELECT {_COLUMNS} FROM {TABLE} WHERE {where} ORDER BY tx, position", params)
        return [r for r in self._records(rows) if not isinstance(r.event, Erased)]

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
        until_checkpoint: str | None = None,
        partition: Partition | None = None,
    ) -> Batch:
        """Scan up to ``limit`` readable rows after ``after`` (and not past ``until``,
        nor past the committed checkpoint of the consumer group ``until_checkpoint``:
        nothing if it has none).

        Only events whose type is in ``types`` (and, for a ``partition``,
        whose shard is the partition's) are decoded and returned, but ``end``
        covers every scanned row: a partition moves past the other
        partitions' events as it moves past types it does not want, so its
        checkpoint says "every event of mine up to here is done". The other
        partitions' payloads are not even fetched. One statement: on
        PostgreSQL it also tells, through ``blocked``, whether committed rows
        wait behind the read barrier. A group that follows another reads the
        leader's checkpoint in it too (``until_checkpoint``), so the two agree
        (one snapshot) and the batch's first round trip is this one, with its
        ``BEGIN``.
        """
        mine = "COALESCE(shard, 0) %% %s = %s"
        part = [partition.count, partition.index] if partition is not None else []
        columns, flag = _COLUMNS, "1"
        column_params: list[Any] = []
        if partition is not None:
            # Every column but the payloads as they are; the payloads only for this partition's rows.
            columns = _COLUMNS.replace("data, metadata", f"CASE WHEN {mine} THEN data END, CASE WHEN {mine} THEN metadata END")
            flag = f"CASE WHEN {mine} THEN 1 ELSE 0 END"
            column_params = part * 3
        where = "(tx, position) > (%s, %s)"
        where_params: list[Any] = [after.tx, after.position]
        if until is not None:
            where += " AND (tx, position) <= (%s, %s)"
            where_params += [until.tx, until.position]
        if until_checkpoint is not None:
            # No row, no bound to compare with: nothing is read (the leader has not begun).
            where += " AND (tx, position) <= (SELECT tx, position FROM parley_checkpoints WHERE name = %s)"
            where_params.append(until_checkpoint)
        if self._is_postgres:
            # With each row of this partition, the key of the person its event is about
            # (if any), from the same snapshot: the keys cost no round trip of their own.
            keyed, keyed_params = (mine, part) if partition is not None else ("TRUE", [])
            sql = (
                # MATERIALIZED: inlined, the barrier function would run once per row.
                f"WITH barrier AS MATERIALIZED (SELECT {_BARRIER_XID} AS xid) "
                f"SELECT {columns}, {_KEY_COLUMNS}, {flag}, tx < barrier.xid FROM {TABLE} CROSS JOIN barrier "
                # LATERAL with LIMIT: one index lookup per row of this partition that is about
                # someone, whatever the planner thinks of the batch's size (never a scan of the keys).
                f"LEFT JOIN LATERAL (SELECT subject, master, wrapped, erased_at FROM {keys.TABLE} "
                f"WHERE {keyed} AND subject = {_subject_sql()} LIMIT 1) k ON TRUE "
                f"WHERE {where} ORDER BY tx, position LIMIT %s"
            )
            params = column_params + keyed_params + where_params + [limit]
        else:
            sql = f"SELECT {columns}, {flag}, 1 FROM {TABLE} WHERE {where} ORDER BY tx, position LIMIT %s"
            params = column_params + where_params + [limit]
        rows = self._fetch(sql, params, prepare=True)
        # Rows are in transaction-id order, so the readable ones come first.
        readable = 0
        while readable < len(rows) and rows[readable][-1]:
            readable += 1
        blocked = readable < len(rows)
        rows = rows[:readable]
        if not rows:
            return Batch([], after, after, blocked)
        wanted = [r for r in rows if r[-2] and (types is None or r[5] in types)]
        end = Cursor(int(rows[-1][1]), int(rows[-1][0]))
        ring = keys.keyring_of(r[11:15] for r in wanted if r[11] is not None) if self._is_postgres else None
        # The events of erased people are skipped like the types nobody wants.
        events = [r for r in self._records(wanted, ring=ring) if not isinstance(r.event, Erased)]
        return Batch(events, after, end, blocked, scanned=len(rows))

    def _records(
        self, rows: Sequence[Sequence[Any]], *, strict: bool = False, ring: keys.Keyring | None = None,
    ) -> list[RecordedEvent]:
        """Rows as recorded events, their personal fields opened with ``ring``, or else
        with one read of their subjects' keys."""
        payloads: list[Any] = []
        subjects: set[str] = set()
        for row in rows:
            try:
                payload = orjson.loads(row[7])
            except Exception as exc:
                if strict:
                    raise
                payload = exc
            payloads.append(payload)
            declared = personal_of(row[5])
            if declared is not None and isinstance(payload, dict):
                subjects.add(str(payload.get(declared.subject)))
        if ring is None:
            ring = keys.for_reading(subjects, self.using)
        elif not subjects <= ring.ciphers.keys():  # the read's rows did not bring every key (_subject_sql)
            ring.ciphers.update(keys.for_reading(subjects - ring.ciphers.keys(), self.using).ciphers)
        return [_record(row, payload, ring, strict=strict) for row, payload in zip(rows, payloads, strict=True)]

    def _fetch(self, sql: str, params: list[Any], *, prepare: bool = False) -> list[tuple[Any, ...]]:
        """Run a query and fetch its rows.

        On PostgreSQL through a server-binding psycopg cursor with binary
        results: Django's cursors bind parameters on the client and take
        rows as text, and turning text back into UUIDs and times took
        longer than the query (half a replay's read). ``prepare``: a hot
        query is planned once per connection.
        """
        conn = self._conn
        if self._is_postgres:
            conn.ensure_connection()
            # In pipeline mode: the BEGIN of a transaction this query opens goes
            # in the same round trip (a batch's first statement is its read).
            with conn.connection.pipeline(), psycopg.Cursor(conn.connection) as cursor:
                cursor.execute(sql, params, prepare=prepare, binary=True)
                return cursor.fetchall()
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def cursor_at(self, position: int) -> Cursor:
        """The reading-order cursor of the event at ``position`` (0: the start)."""
        if position == 0:
            return Cursor.start()
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT tx FROM {TABLE} WHERE position = %s", [position])
            row = cursor.fetchone()
        if row is None:
            raise UnknownPosition(position)
        return Cursor(int(row[0]), position)

    def head(self) -> Cursor:
        """The cursor of the last event a reader can see now."""
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT tx, position FROM {TABLE} WHERE {self._barrier()} ORDER BY tx DESC, position DESC LIMIT 1")
            row = cursor.fetchone()
        return Cursor(int(row[0]), int(row[1])) if row else Cursor.start()

    def event_id_at(self, position: int) -> uuid.UUID | None:
        """The id of the event at ``position`` (None if none is): for a log record naming an event."""
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT event_id FROM {TABLE} WHERE position = %s", [position])
            row = cursor.fetchone()
        return _as_uuid(row[0]) if row else None

    def count_after(self, after: Cursor) -> int:
        """How many readable events follow ``after`` (a consumer's lag)."""
        with self._conn.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM {TABLE} WHERE (tx, position) > (%s, %s) AND {self._barrier()}",
                [after.tx, after.position],
            )
            return int(cursor.fetchone()[0])

    def _barrier(self) -> str:
        return f"tx < {_BARRIER_XID}" if self._is_postgres else "1 = 1"


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)  # SQLite stores naive UTC text


def _open(event_type: str, payload: dict[str, Any], ring: keys.Keyring) -> str | None:
    """Put an event's sealed personal fields back into ``payload``; the subject
    if they cannot be read any more (the subject was erased), else None."""
    declared = personal_of(event_type)
    if declared is None:
        return None
    subject = str(payload.get(declared.subject))
    if ring.erased(subject):
        return subject
    sealed = payload.pop(keys.SEALED, None)
    if sealed is None:
        return None  # nothing personal in it, or written before sealing existed
    opened = ring.open(event_type, subject, sealed)
    if opened is None:
        return subject
    payload.update(orjson.loads(opened))
    return None


def _record(row: Sequence[Any], payload: Any, ring: keys.Keyring, *, strict: bool = False) -> RecordedEvent:
    """A row (its payload parsed, or the parse's error) as a recorded event.

    An event about an erased person comes back as ``Erased`` (raising
    SubjectErased when ``strict``: nothing is decided about them again). A
    payload that cannot be decoded raises when ``strict`` (a stream loaded to
    decide a command must be whole), else comes back as ``Undecodable``,
    named, for the consumers that want its type."""
    position, tx, event_id, stream_id, version, event_type, schema_version, data, meta, at, shard = row[:11]
    event: DomainEvent
    try:
        if isinstance(payload, Exception):
            raise payload
        erased = _open(event_type, payload, ring)
        if erased is not None:
            if strict:
                raise keys.SubjectErased(erased)
            event = Erased(event_type, erased)
        else:
            event = decode(event_type, int(schema_version), payload)
    except keys.SubjectErased:
        raise
    except Exception as exc:
        if strict:
            raise
        event = Undecodable(event_type, f"{type(exc).__name__}: {exc}")
    try:
        metadata = Metadata.from_json(orjson.loads(meta))
    except Exception:
        metadata = Metadata()
    recorded = assemble(RecordedEvent, {  # RecordedEvent(...) without its __init__'s cost, a replay's hottest line
        "position": int(position),
        "tx": int(tx),
        "stream_id": stream_id,
        "version": int(version),
        "event_id": _as_uuid(event_id),
        "event": event,
        "metadata": metadata,
        "recorded_at": _as_datetime(at),
        "shard": int(shard),
    })
    recorded.__dict__["event_type"] = event.event_type  # the cached property, filled in at once
    return recorded
