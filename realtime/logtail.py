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
import time
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from accounts.principals import Principal
from eventstore.events import Cursor
from eventstore.partitions import Partition
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
#: Seconds an erasure the dispatcher handed on is surely remembered (longer ones are
#: dropped as later erasures come in). Far longer than a process answers "this
#: customer exists" from memory (customers.directory: 5 s), which is what a
#: socket of an erased customer that registers after the erasure slips through.
ERASURES_REMEMBERED = 60.0


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

    With a partitioned pipeline (eventstore.partitions) each partition
    publishes its own batches, in its own order. ``received`` keeps, per
    partition, how far its events have come in (published, or read from the
    log); events wait in ``held`` until every partition has come that far,
    and then go to the sockets in log order, so ``cursor`` (everything up to
    it handed on) only ever moves forward over events of every partition.
    With one partition nothing waits.
    """

    cursor: Cursor | None
    audiences: dict[str, set[Listener]]
    stats: Stats
    _store: EventStore
    #: How many partitions the pipeline has (every process of a deployment says the same).
    partition_count: int
    received: dict[int, Cursor]
    held: list[Envelope]
    #: Customers whose ``customer.erased`` this dispatcher handed on, and when (time.monotonic()).
    erasures: dict[str, float]

    def _start_at(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.received = dict.fromkeys(range(self.partition_count), cursor)
        self.held = []

    async def _on_batch(self, prev: Cursor, end: Cursor, wire: list[Any], partition: int = 0) -> None:
        assert self.cursor is not None
        if end <= self.received[partition]:
            return  # already in (read from the log, or published twice)
        if prev > self.received[partition]:
            await self._fill_partition(partition, prev)  # publications between were lost
        for raw in wire:
            envelope = Envelope.from_wire(raw)
            if envelope.cursor > self.received[partition]:
                self.held.append(envelope)
        self.received[partition] = end
        await self._release()

    async def _fill(self, until: Cursor, partition: int = 0) -> None:
        """Read one partition's stretch (received, until] from the log, as publications would have brought it."""
        await self._fill_partition(partition, until)
        await self._release()

    async def _fill_partition(self, partition: int, until: Cursor) -> None:
        if until <= self.received[partition]:
            return
        self.stats.fills += 1
        while self.received[partition] < until:
            batch, envs = await db(self._read)(self.received[partition], until, partition)
            self.held += envs
            self.stats.filled_events += len(batch.events)
            if batch.end == self.received[partition]:
                return  # nothing readable yet (cannot happen below the checkpoint); try later
            self.received[partition] = batch.end

    async def _release(self) -> None:
        """Hand on, in log order, every held event every partition has come past."""
        assert self.cursor is not None
        frontier = min(self.received.values())
        if frontier <= self.cursor:
            return
        ready = sorted((e for e in self.held if e.cursor <= frontier), key=lambda e: e.cursor)
        self.held = [e for e in self.held if e.cursor > frontier]
        for envelope in ready:
            if envelope.cursor > self.cursor:
                await self._hand_on(envelope)
        self.cursor = frontier

    def _read(self, after: Cursor, until: Cursor, partition: int) -> tuple[Any, list[Envelope]]:
        part = Partition(partition, self.partition_count) if self.partition_count > 1 else None
        batch = self._store.read_batch(after, FILL_BATCH, types=FRAME_EVENT_TYPES, until=until, partition=part)
        events = batch.events
        if AGENTS not in self.audiences:
            wanted = set(self.audiences)
            # An erasure is kept though none of the customer's sockets is here: see ``erased``.
            events = [r for r in events if r.event_type == "CustomerErased"
                      or frames.customer_audience(r.event.customer_id) in wanted]  # type: ignore[attr-defined]
        return batch, frames.envelopes(events)

    async def _hand_on(self, envelope: Envelope) -> None:
        if envelope.to_customer and frames.is_erasure(envelope.to_customer[0]):
            self._remember_erasure(envelope.customer_id)
        for listener in list(self.audiences.get(frames.customer_audience(envelope.customer_id), ())):
            await self._offer(listener, envelope.cursor, envelope.to_customer)
        if envelope.to_agents:
            for listener in list(self.audiences.get(AGENTS, ())):
                await self._offer(listener, envelope.cursor, envelope.to_agents)

    def erased(self, customer_id: str) -> bool:
        """Whether this dispatcher has handed on the customer's erasure (within
        ``ERASURES_REMEMBERED`` at least).

        A customer's socket asks right after registering, before any
        suspension point. Registered before the erasure went by, it is
        offered ``customer.erased`` like any event of its view, and closes on
        it; registered after, it would never hear of it. Such a socket got
        past the check that the customer exists only because its process
        still remembered them (for up to five seconds after the erasure), and
        is refused here instead.
        """
        return customer_id in self.erasures

    def _remember_erasure(self, customer_id: str) -> None:
        now = time.monotonic()
        # Oldest first (insertion order): drop those past the period, so a mass erasure costs a minute's worth.
        while self.erasures:
            oldest, at = next(iter(self.erasures.items()))
            if now - at < ERASURES_REMEMBERED:
                break
            del self.erasures[oldest]
        self.erasures[customer_id] = now

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
