"""Appends decided during a consumer's batch and written at its end: ``DeferredAppends``.

Readers of the log wait behind every transaction that may still append
(the read barrier, eventstore.reading), from the moment it has a
transaction id, which PostgreSQL gives it at its first write. A process
manager whose commands append events as it goes (the workflow) would so
hold back the read models, and every live frame, for the rest of its batch
after its first append. With ``DeferredAppends`` as their store the same
commands decide as usual, against the stream as read plus what the batch
decided before, and their events are written together by ``flush``, in
one round trip just before the batch commits.

An event decided this way has no position yet: it is handed back with a
provisional one above every position of the log (so "later than any
message of this batch", which is what it will be), and the transaction id
0. What a stream is checked against is the version the command read: if
another writer appended to that stream meanwhile, ``flush`` raises
ConcurrencyConflict and the caller decides the batch again, the plain way,
inside a savepoint it took (conversations.process_manager).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from eventstore.events import DomainEvent, Metadata, NewEvent, RecordedEvent, shard_of_event
from eventstore.store import Append, ConcurrencyConflict, EventStore

#: Provisional positions start here: above any position a log will reach.
PROVISIONAL = 1 << 62


class DeferredAppends:
    """An ``EventStore`` for the commands of one batch: reads go to the log (plus what
    this batch decided), appends wait for ``flush``."""

    def __init__(self, store: EventStore | None = None) -> None:
        self.store = store or EventStore()
        self._decided: dict[str, list[RecordedEvent]] = {}
        self._appends: list[Append] = []
        self._provisional = itertools.count(PROVISIONAL)

    def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        return self.store.read_stream(stream_id) + self._decided.get(stream_id, [])

    def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent | NewEvent],
        expected_version: int,
        metadata: Metadata | None = None,
    ) -> list[RecordedEvent]:
        if not events:
            return []
        decided = self._decided.setdefault(stream_id, [])
        if decided and decided[-1].version != expected_version:
            raise ConcurrencyConflict(stream_id, expected_version, decided[-1].version)
        metadata = metadata or Metadata()
        pending = [e if isinstance(e, NewEvent) else NewEvent(e) for e in events]
        now = dt.datetime.now(dt.timezone.utc)
        recorded = [
            RecordedEvent(
                position=next(self._provisional), tx=0, stream_id=stream_id,
                version=expected_version + i + 1, event_id=p.event_id, event=p.event, metadata=metadata,
                recorded_at=now, shard=shard_of_event(p.event),
            )
            for i, p in enumerate(pending)
        ]
        decided += recorded
        self._appends.append(Append(stream_id, pending, expected_version, metadata))
        return recorded

    @property
    def pending(self) -> int:
        """Appends decided and not written yet."""
        return len(self._appends)

    def flush(self) -> None:
        """Write every decided append, in one round trip (EventStore.append_all)."""
        appends, self._appends, self._decided = self._appends, [], {}
        self.store.append_all(appends)
