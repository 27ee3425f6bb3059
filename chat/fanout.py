"""The real-time fan-out: a consumer of the log that sends frames after commit.

Why a consumer and not ``on_commit`` in the request: frames then leave in
log order, from one place, carrying positions that a resuming socket can
compare with what it replayed; a crash between commit and send is redone
from the checkpoint instead of lost. The channel layer may still drop a
frame; clients recover with ``resume``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from channels.layers import get_channel_layer

from chat.realtime import FRAME_EVENT_TYPES, envelopes
from eventstore.events import RecordedEvent

log = logging.getLogger(__name__)


class RealtimeFanout:
    name = "realtime"
    event_types = FRAME_EVENT_TYPES
    # Frames carry badges and conversation rows: never run ahead of them.
    depends_on: Sequence[str] = ("badge", "conversations", "timeline", "directory")

    def handle(self, events: Sequence[RecordedEvent]) -> list[tuple[str, dict[str, Any]]]:
        return [m for env in envelopes(events) for m in env.group_messages()]

    def reset(self) -> None:
        """Nothing stored; a rebuild only moves the checkpoint (history is not re-sent)."""

    async def after_commit(self, effects: list[tuple[str, dict[str, Any]]]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for group, message in effects:
            try:
                await layer.group_send(group, message)
            except Exception:  # the layer is best effort; clients resume from the log
                log.warning("could not send to %s", group, exc_info=True)
