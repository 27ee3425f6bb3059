"""The event store: append with optimistic concurrency, read in a gap-free order.

``EventStore`` is the log's interface. This module holds the append path:
one INSERT that checks the stream's version, the errors it raises, the
wake-up of readers once it commits, and the replay marker that keeps a
rebuild from appending. The reading path, with the transaction-id read
barrier that orders it on PostgreSQL, is ``LogReader`` (eventstore.reading),
which ``EventStore`` extends; what a read returns and raises (``Batch``,
``UnknownPosition``) is defined there.

Appends and reads are plain SQL: they are the hot path of every command and
every consumer, and the ORM's per-row overhead was the larger part of both
(docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import IntegrityError, connections, transaction

from eventstore import keys
from eventstore.events import DomainEvent, Metadata, NewEvent, RecordedEvent, encode, personal_of, shard_of_event
from eventstore.reading import TABLE, LogReader, _as_uuid
from eventstore.unit import run_pipelined

#: application_name of a transaction that promises never to append events
#: (a read-model rebuild): readers need not wait for it.
REPLAY_APPLICATION_NAME = "parley:replay"
#: The same promise from a live consumer group that only derives rows from the
#: log (the read models, the process managers that queue pushes, webhooks and
#: emails): its batch transaction takes a transaction id when it locks its
#: checkpoint, and readers of the log need not wait for that id either.
DERIVING_APPLICATION_NAME = "parley:derived"

_INSERT_COLUMNS = "event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at, shard, tx"


class _Replaying(threading.local):
    active = False


#: Set (per thread) while a rebuild runs; append() refuses meanwhile.
replaying = _Replaying()


def mark_replay_transaction(using: str = "default", name: str = REPLAY_APPLICATION_NAME) -> None:
    """Declare the current transaction one that will append no events (a replay,
    or with ``name`` DERIVING_APPLICATION_NAME a live group's batch), so that
    readers of the log do not wait for it (eventstore.reading, the read
    barrier). Call it before the transaction writes anything, so that its
    transaction id is never seen without the mark; ``replaying`` makes
    ``append`` refuse meanwhile, so the promise holds."""
    conn = connections[using]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SET LOCAL application_name = %s", [name])


def no_appends_statement(using: str = "default", name: str = DERIVING_APPLICATION_NAME) -> tuple[str, list[Any]] | None:
    """The statement that marks the current transaction as mark_replay_transaction does,
    to send in one round trip with others (before any of them writes); None where
    there is no read barrier (SQLite)."""
    if connections[using].vendor != "postgresql":
        return None
    return "SELECT set_config('application_name', %s, true)", [name]


def _violated_constraint(err: IntegrityError) -> str:
    """'event_id' or 'stream_version': which uniqueness an insert broke."""
    diag = getattr(err.__cause__, "diag", None)
    name = getattr(diag, "constraint_name", None) or str(err)
    return "event_id" if "event_id" in name else "stream_version"


#: Called after every commit that appended events, with the database alias:
#: the worker plumbing hangs its wake-ups here (workers.apps). A hint only:
#: readers poll as well, so nothing depends on it.
append_listeners: list[Callable[[str], None]] = []


def subject_of(e: DomainEvent) -> str | None:
    """The id of the person an event is about (None: nobody's: eventstore.events.personal_of)."""
    declared = personal_of(e.event_type)
    return None if declared is None else str(getattr(e, declared.subject))


def stored_payload(e: DomainEvent, ring: keys.Keyring) -> str:
    """An event's payload as the log stores it: its personal fields sealed with its subject's key from ``ring``."""
    payload = encode(e)
    declared = personal_of(e.event_type)
    if declared is not None and declared.fields:
        fields = {name: payload.pop(name) for name in declared.fields}
        payload[keys.SEALED] = ring.seal(e.event_type, str(payload[declared.subject]), json.dumps(fields).encode())
    return json.dumps(payload, separators=(",", ":"))


@dataclass(frozen=True)
class Append:
    """One append of ``EventStore.append_all``."""

    stream_id: str
    events: list[NewEvent]
    expected_version: int
    metadata: Metadata


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


class EventStore(LogReader):
    """Append-only log over one Django database connection alias."""

    # -- writing ---------------------------------------------------------

    def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent | NewEvent],
        expected_version: int,
        metadata: Metadata | None = None,
    ) -> list[RecordedEvent]:
        """Append ``events`` to ``stream_id`` if it is at ``expected_version``.

        Raises ConcurrencyConflict if the stream is at another version,
        DuplicateEvent if an event id is already stored; either way nothing
        is appended. One INSERT statement does it: outside a transaction it
        commits on its own (one round trip); inside the caller's transaction
        it runs in a savepoint, so the transaction stays usable after a
        conflict, and readers are woken when that transaction commits.
        """
        if not events:
            return []
        if replaying.active:
            raise RuntimeError("a replay, or a consumer group that appends nothing, must not append events "
                               "(readers do not wait for its transaction)")
        metadata = metadata or Metadata()
        pending = [e if isinstance(e, NewEvent) else NewEvent(e) for e in events]
        now = dt.datetime.now(dt.timezone.utc)
        conn = self._conn
        try:
            if conn.in_atomic_block:
                with transaction.atomic(using=self.using):
                    rows = self._insert(stream_id, pending, expected_version, metadata, now)
                transaction.on_commit(self._wake, using=self.using)
            else:
                rows = self._insert(stream_id, pending, expected_version, metadata, now)
                self._wake()
        except IntegrityError as err:
            if _violated_constraint(err) == "event_id":
                raise DuplicateEvent(self._stored_ids([p.event_id for p in pending])) from None
            raise ConcurrencyConflict(stream_id, expected_version, self.stream_version(stream_id)) from None
        if not rows:  # the stream is not at expected_version (it is behind it)
            raise ConcurrencyConflict(stream_id, expected_version, self.stream_version(stream_id))
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
                shard=shard_of_event(p.event),
            )
            for i, (p, (position, tx)) in enumerate(zip(pending, rows, strict=True))
        ]

    def append_all(self, appends: Sequence[Append]) -> None:
        """Several appends, each to its stream at its expected version, in one round trip
        (PostgreSQL's pipeline mode), inside the caller's transaction: all of them, or
        ConcurrencyConflict (a stream was not at its expected version, or an event id was
        taken) and the transaction must be rolled back to a savepoint the caller holds.

        For a consumer that decides first and appends at the end of its batch
        (eventstore.deferred), so that its transaction has an id, which every
        reader of the log waits behind, only for its last round trips.
        """
        if not appends:
            return
        if replaying.active:
            raise RuntimeError("a replay, or a consumer group that appends nothing, must not append events")
        if not self._is_postgres or not self._conn.in_atomic_block:
            raise RuntimeError("append_all runs inside a transaction on PostgreSQL (elsewhere: append)")
        now = dt.datetime.now(dt.timezone.utc)
        statements = [self._insert_statement(a.stream_id, a.events, a.expected_version, a.metadata, now) for a in appends]
        conn = self._conn
        conn.ensure_connection()
        try:
            with conn.wrap_database_errors:
                answered = run_pipelined(conn.connection, [(sql, params) for sql, params, _ in statements],
                                         range(len(statements)))
        except IntegrityError as err:
            if _violated_constraint(err) == "event_id":
                raise DuplicateEvent({e.event_id for a in appends for e in a.events}) from None
            raise ConcurrencyConflict(", ".join(sorted({a.stream_id for a in appends})), -1, None) from None
        for a, rows, (_, _, subjects) in zip(appends, answered, statements, strict=True):
            if len(rows) != len(a.events):
                self._refuse_if_erased(subjects)
                raise ConcurrencyConflict(a.stream_id, a.expected_version, None)
        transaction.on_commit(self._wake, using=self.using)

    def _wake(self) -> None:
        for listener in append_listeners:
            listener(self.using)

    def _stored_ids(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        with self._conn.cursor() as cursor:
            marks = ", ".join(["%s"] * len(ids))
            cursor.execute(f"SELECT event_id FROM {TABLE} WHERE event_id IN ({marks})", [self._uuid_param(i) for i in ids])
            return {_as_uuid(r[0]) for r in cursor.fetchall()} or set(ids)

    def _uuid_param(self, value: uuid.UUID) -> Any:
        return value if self._is_postgres else value.hex

    def _payloads(self, events: list[DomainEvent], subjects: list[str]) -> list[str]:
        """The stored payloads: each event's fields, its personal ones sealed with its subject's key
        (eventstore.keys; SubjectErased if that subject is known to be erased)."""
        ring = keys.for_appending(subjects, self.using) if subjects else keys.Keyring({})
        return [stored_payload(e, ring) for e in events]

    def _insert(
        self,
        stream_id: str,
        pending: list[NewEvent],
        expected_version: int,
        metadata: Metadata,
        now: dt.datetime,
    ) -> list[tuple[int, int]]:
        conn = self._conn
        sql, params, subjects = self._insert_statement(stream_id, pending, expected_version, metadata, now)
        if self._is_postgres:
            # Planned once per connection (its shape depends only on the number of events).
            conn.ensure_connection()
            with conn.wrap_database_errors, psycopg.Cursor(conn.connection) as cursor:
                cursor.execute(sql, params, prepare=True)
                rows = [(int(r[0]), int(r[1])) for r in cursor.fetchall()]
        else:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                rows = [(int(r[0]), int(r[1])) for r in cursor.fetchall()]
        if not rows:
            self._refuse_if_erased(subjects)
        rows.sort()
        return rows

    def _refuse_if_erased(self, subjects: list[str]) -> None:
        """After an append that wrote nothing: SubjectErased if that was an erased subject."""
        for subject in subjects:
            if keys.is_erased(subject, self.using):
                raise keys.SubjectErased(subject)

    def _insert_statement(
        self,
        stream_id: str,
        pending: list[NewEvent],
        expected_version: int,
        metadata: Metadata,
        now: dt.datetime,
    ) -> tuple[str, list[Any], list[str]]:
        """The INSERT of one append, its parameters, and the subjects whose keys sealed it.
        It answers no row if the stream is not at ``expected_version`` (or a subject is erased)."""
        meta_json = json.dumps(metadata.as_json(), separators=(",", ":"))
        subjects = sorted({s for s in (subject_of(p.event) for p in pending) if s is not None})
        payloads = self._payloads([p.event for p in pending], subjects)
        at = now if self._is_postgres else now.replace(tzinfo=None).isoformat(" ")
        tx = "pg_current_xact_id()::text::bigint" if self._is_postgres else "0"
        params: list[Any] = []
        for i, p in enumerate(pending):
            params += [
                self._uuid_param(p.event_id),
                stream_id,
                expected_version + i + 1,
                p.event.event_type,
                p.event.schema_version,
                payloads[i],
                meta_json,
                at,
                shard_of_event(p.event),
            ]
        # Nothing about an erased person is written again: the statement itself
        # checks (an erasure committed a moment ago included), so the keys an
        # append seals with may come from the process's memory (eventstore.keys).
        conditions: list[str] = []
        if subjects:
            marks = ", ".join(["%s"] * len(subjects))
            conditions.append(f"NOT EXISTS (SELECT 1 FROM {keys.TABLE} WHERE subject IN ({marks}) AND erased_at IS NOT NULL)")
        if expected_version > 0:
            # Only if the stream has reached expected_version (a higher one
            # already taken fails on the unique constraint), in the same statement.
            conditions.append(f"EXISTS (SELECT 1 FROM {TABLE} WHERE stream_id = %s AND version = %s)")
        if not conditions:
            # A new stream: the unique (stream, version) constraint is the whole check.
            values = ", ".join([f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, {tx})"] * len(pending))
            sql = f"INSERT INTO {TABLE} ({_INSERT_COLUMNS}) VALUES {values} RETURNING position, tx"
        else:
            row = "(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            if self._is_postgres:
                row = "(%s::uuid, %s, %s::int, %s, %s::smallint, %s, %s, %s::timestamptz, %s::smallint)"
            values = ", ".join([row] * len(pending))
            sql = (
                f"INSERT INTO {TABLE} ({_INSERT_COLUMNS}) "
                f"SELECT v.*, {tx} FROM (VALUES {values}) AS v WHERE {' AND '.join(conditions)} "
                "RETURNING position, tx"
            )
            params += subjects
            if expected_version > 0:
                params += [stream_id, expected_version]
        return sql, params, subjects
