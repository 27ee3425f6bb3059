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
from collections.abc import Callable
from typing import Any

from eventstore import failures
from eventstore.events import Cursor
from eventstore.partitions import Partition
from eventstore.reading import Batch
from readmodels import asof
from readmodels.projections import PIPELINE
from realtime.dispatcher import publish
from realtime.frames import FRAME_EVENT_TYPES, envelopes

log = logging.getLogger(__name__)

#: Seconds between heartbeats.
BEAT_INTERVAL = 1.0


class RealtimeFanout:
    name = "realtime"
    event_types = FRAME_EVENT_TYPES

    def __init__(self, partition: Partition | None = None) -> None:
        self._failing = False
        #: The pipeline's partition whose batches this member publishes (index, count).
        self.partition = [partition.index, partition.count] if partition is not None else [0, 1]

    def handle(self, batch: Batch) -> dict[str, Any] | None:
        """The batch's frames, built from the rows the read models left as of each
        event (readmodels.asof, in the batch's unit), to publish after commit.

        Every batch is published, even one without frames: a dispatcher
        checks that each batch starts where the previous one ended. Frames
        that cannot be built (a bug in a frame) must not stop the read
        models: the failure is logged and counted, nothing is published,
        and every dispatcher reads that stretch from the log itself when the
        next batch or heartbeat shows it missing.
        """
        rows_of = asof.in_unit(batch.unit) if batch.unit is not None else None
        try:
            wire = [e.wire() for e in envelopes(batch.events, rows_of)]
        except Exception:
            failures.member_skipped(PIPELINE, self.name, (batch.start, batch.end))
            return None
        return {
            "type": "parley.batch",
            "partition": self.partition,
            "prev": [batch.start.tx, batch.start.position],
            "end": [batch.end.tx, batch.end.position],
            "envelopes": wire,
        }

    def reset(self) -> None:
        """Nothing stored: a rebuild does not re-send history."""

    async def after_commit(self, message: dict[str, Any] | None) -> None:
        if message is not None:
            await self._publish(message)

    async def heartbeat(self, stop: asyncio.Event, committed: Callable[[], Cursor | None]) -> None:
        """Publish the pipeline's committed cursor every second while this instance runs it."""
        while not stop.is_set():
            cursor = committed()
            if cursor is not None:
                await self._publish({"type": "parley.beat", "partition": self.partition, "end": [cursor.tx, cursor.position]})
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
