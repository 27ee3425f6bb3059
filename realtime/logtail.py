"""The dispatcher's hold on the log: every event past its cursor reaches the sockets, once, in order.

``LogTail`` is the part of the dispatcher (realtime.dispatcher, whose
docstring follows a logged event from the pipeline to a socket) that keeps
``cursor``: a published batch that continues from it is handed on as it is;
one that starts beyond it means publications were lost, and the missing
stretch is read from the log and made into the same frames first. Each
event goes to the sockets of its audience; a socket that fails to take one
is told to resync (its frames count as dropped, and the failure is logged
with the event's id and position).

It is apart from the dispatcher's life, channel layer and ephemeral frames
because this is the part that must never skip or repeat an event. What it
shares with the rest sits here, below the dispatcher: the ``Listener``
protocol, the ``Stats`` it counts in, and ``db``, the threads it reads the
log on (the dispatcher uses them too; the sockets take ``db`` from
realtime.dispatcher).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from accounts.principals import Principal
from eventstore.events import Cursor
from eventstore.store import EventStore
from observability.logs import event_fields
from observability.metrics import DROPPED_SOCKET_FAILED
from realtime import frames
from realtime.frames import AGENTS, FRAME_EVENT_TYPES, Envelope
from workers.dbthreads import DatabaseThreads

log = logging.getLogger(__name__)

#: Events read from the log per query when filling a gap.
FILL_BATCH = 500
#: The dispatcher's name as a consumer of the log, in its log records.
DISPATCHER = "realtime-dispatcher"


class Listener(Protocol):
    """What the dispatcher needs from a socket."""

    audience: str
    listener_id: str
    principal: Principal | None

    async def offer(self, cursor: Cursor, frames: tuple[str, ...]) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def resync(self) -> None: ...

    async def revoke(self, detail: str) -> None: ...


#: ORM calls of the dispatcher and the sockets (resume, commands), on threads that keep their connections.
db = DatabaseThreads(settings.PARLEY_REALTIME_DB_THREADS, "realtime-db")


@dataclass
class Stats:
    """What /healthz and tests read about a dispatcher."""

    batches: int = 0
    beats: int = 0
    fills: int = 0  # stretches read from the log because publications were missing
    filled_events: int = 0
    resyncs: int = 0
    heard_at: float = 0.0  # time.monotonic() of the last batch or heartbeat


class LogTail:
    """The dispatcher's cursor and how events past it are handed on (see the module docstring).

    Mixed into ``Dispatcher``, whose ``__init__`` sets the attributes declared here.
    """

    cursor: Cursor | None
    audiences: dict[str, set[Listener]]
    stats: Stats
    _store: EventStore

    async def _on_batch(self, prev: Cursor, end: Cursor, wire: list[Any]) -> None:
        assert self.cursor is not None
        if end <= self.cursor:
            return  # already handed on (read from the log, or published twice)
        if prev > self.cursor:
            await self._fill(prev)  # publications between cursor and prev were lost
        for raw in wire:
            envelope = Envelope.from_wire(raw)
            if envelope.cursor > self.cursor:
                await self._hand_on(envelope)
        self.cursor = end

    async def _fill(self, until: Cursor) -> None:
        """Read (cursor, until] from the log and hand it on, as publications would have."""
        assert self.cursor is not None
        if until <= self.cursor:
            return
        self.stats.fills += 1
        while self.cursor < until:
            batch, envs = await db(self._read)(self.cursor, until)
            for envelope in envs:
                await self._hand_on(envelope)
            self.stats.filled_events += len(batch.events)
            if batch.end == self.cursor:
                return  # nothing readable yet (cannot happen below the checkpoint); try later
            self.cursor = batch.end

    def _read(self, after: Cursor, until: Cursor) -> tuple[Any, list[Envelope]]:
        batch = self._store.read_batch(after, FILL_BATCH, types=FRAME_EVENT_TYPES, until=until)
        events = batch.events
        if AGENTS not in self.audiences:
            wanted = set(self.audiences)
            events = [r for r in events if frames.customer_audience(r.event.customer_id) in wanted]  # type: ignore[attr-defined]
        return batch, frames.envelopes(events)

    async def _hand_on(self, envelope: Envelope) -> None:
        for listener in list(self.audiences.get(frames.customer_audience(envelope.customer_id), ())):
            await self._offer(listener, envelope.cursor, envelope.to_customer)
        if envelope.to_agents:
            for listener in list(self.audiences.get(AGENTS, ())):
                await self._offer(listener, envelope.cursor, envelope.to_agents)

    async def _offer(self, listener: Listener, cursor: Cursor, texts: tuple[str, ...]) -> None:
        try:
            await listener.offer(cursor, texts)
        except Exception as exc:
            # This socket may or may not have the event now: it is told so.
            DROPPED_SOCKET_FAILED.inc(len(texts))
            await self._log_offer_failure(listener, cursor, exc)
            self.stats.resyncs += 1
            await listener.resync()

    async def _log_offer_failure(self, listener: Listener, cursor: Cursor, exc: Exception) -> None:
        """Log the failure with the event's id, read from the log (this path is rare; the
        frames on the hot path carry only positions)."""
        try:
            event_id = await db(self._store.event_id_at)(cursor.position)
        except Exception:
            event_id = None
        log.error(
            "could not hand event %s at position %d to a socket (%s); asking it to resync",
            event_id, cursor.position, listener.audience,
            exc_info=exc,
            extra=event_fields(DISPATCHER, event_id, cursor.position, audience=listener.audience),
        )
