"""The real-time fan-out: publishes each committed batch's frames to every web process.

A member of the pipeline (see readmodels.projections.PIPELINE): its
``handle`` runs inside the pipeline's transaction after the projections, so
the frames are built from read models exactly current to the batch; its
``after_commit`` publishes them once the batch has committed, to the one
channel-layer group every web process's dispatcher listens to. Beside it,
``heartbeat`` publishes the committed cursor every second.

A publication that fails or is lost costs nothing but time: a dispatcher
that sees a batch or heartbeat beyond what it has, or hears nothing at all,
reads the missing events from the log itself (realtime.dispatcher).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from eventstore.events import Cursor, RecordedEvent
from eventstore.reading import Batch
from eventstore.unit import Unit
from readmodels import present
from readmodels.models import Conversation, DirectoryEntry, TimelineMessage
from readmodels.projections import badges_after
from realtime.dispatcher import publish
from realtime.frames import FRAME_EVENT_TYPES, envelopes

log = logging.getLogger(__name__)

#: Seconds between heartbeats.
BEAT_INTERVAL = 1.0


class UnitLookups:
    """What the frames need, from the batch's unit: the rows as the projections left them."""

    def __init__(self, unit: Unit, events: Sequence[RecordedEvent]) -> None:
        self.unit, self.events = unit, events

    def customer_names(self, customer_ids: set[uuid.UUID]) -> dict[str, str]:
        rows = (self.unit.get(DirectoryEntry, c) for c in customer_ids)
        return {str(r["customer_id"]): r["name"] for r in rows if r is not None}

    def conversations_of(self, customer_ids: set[uuid.UUID], names: dict[str, str]) -> dict[str, dict[str, Any]]:
        rows = [self.unit.get(Conversation, c) for c in customer_ids]
        # A unit row has the model's attributes: present it as the model would be.
        as_conversation: Any = present.present_conversation
        return {str(r["customer_id"]): as_conversation(SimpleNamespace(**r), names) for r in rows if r is not None}

    def badges_at(self, changes: list[tuple[uuid.UUID, Cursor]]) -> dict[Cursor, int]:
        wanted = {c for _, c in changes}
        return badges_after(self.unit, [r for r in self.events if r.cursor in wanted])

    def timeline_rows(self, message_ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
        rows = (self.unit.get(TimelineMessage, m) for m in message_ids)
        return {r["message_id"]: SimpleNamespace(**r) for r in rows if r is not None}


class RealtimeFanout:
    name = "realtime"
    event_types = FRAME_EVENT_TYPES

    def __init__(self) -> None:
        self._failing = False

    def prepare(self, batch: Batch) -> None:
        if not batch.events:
            return
        assert batch.unit is not None
        customers = {r.event.customer_id for r in batch.events}  # type: ignore[attr-defined]
        batch.unit.want(DirectoryEntry, customers)
        batch.unit.want(Conversation, customers)
        batch.unit.want(TimelineMessage, (r.event.message_id for r in batch.events if r.event_type == "MessageEdited"))  # type: ignore[attr-defined]

    def handle(self, batch: Batch) -> dict[str, Any]:
        # Every batch is published, even one without frames: a dispatcher
        # checks that each batch starts where the previous one ended.
        lookups = UnitLookups(batch.unit, batch.events) if batch.unit is not None else None
        return {
            "type": "parley.batch",
            "prev": [batch.start.tx, batch.start.position],
            "end": [batch.end.tx, batch.end.position],
            "envelopes": [e.wire() for e in envelopes(batch.events, lookups)],
        }

    def reset(self) -> None:
        """Nothing stored: a rebuild does not re-send history."""

    async def after_commit(self, message: dict[str, Any]) -> None:
        await self._publish(message)

    async def heartbeat(self, stop: asyncio.Event, committed: Callable[[], Cursor | None]) -> None:
        """Publish the pipeline's committed cursor every second while this instance runs it."""
        while not stop.is_set():
            cursor = committed()
            if cursor is not None:
                await self._publish({"type": "parley.beat", "end": [cursor.tx, cursor.position]})
            try:
                await asyncio.wait_for(stop.wait(), timeout=BEAT_INTERVAL)
            except TimeoutError:
                pass

    async def _publish(self, message: dict[str, Any]) -> None:
        if not await publish(message):
            if not self._failing:
                log.warning("cannot publish to the channel layer; web processes read the log instead")
            self._failing = True
            return
        if self._failing:
            log.info("publishing to the channel layer again")
            self._failing = False
