"""What one socket has been sent of the log, and what waits to be sent.

The dispatcher offers every logged event of the socket's audience in log
order. Normally the frames go out at once. While the socket replays the log
for a ``resume`` (or waits for the client to answer ``resync``), offers are
held in a bounded buffer and go out after the replay, so nothing is sent out
of order. If the buffer fills up, it is dropped and the replay simply reads
further in the log: the log has every event, the buffer is only a shortcut.

A new socket holds its offers too, until the client's first ``resume``
says what it already has: a frame the client has would otherwise be sent
again. A client that does not resume (it sends something else first, or
nothing for a moment) gets them from the point it connected.

The socket remembers the stretch of the log it has delivered without a hole:
everything of its view in ``(low, sent]``. A ``resume`` replays the client's
stretch ``(after, head]`` minus that stretch (those frames already went out
on this socket, and TCP brings them), so a client that follows the protocol
gets every event exactly once, even if it resumes after frames went out.

Frames it sends count as ``live`` or ``replay``, frames its full buffer
drops as ``buffer_full`` (observability.metrics; docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eventstore.events import Cursor
from observability.metrics import DROPPED_BUFFER_FULL, FRAMES_LIVE, FRAMES_REPLAY

#: Offers a holding socket buffers before it drops them and reads the log instead.
BUFFER_LIMIT = 1000

SendText = Callable[[str], Awaitable[None]]


class Delivery:
    def __init__(self, send_text: SendText, registered_at: Cursor) -> None:
        self._send_text = send_text
        #: Everything of this view in (low, sent] has been sent on this socket.
        self.low: Cursor = registered_at
        self.sent: Cursor = registered_at
        self.holding = True  # until the first resume, or until the client shows it sends none
        self.anchored = False  # a resume has told what the client has
        self.pending: list[tuple[Cursor, tuple[str, ...]]] = []
        self.overflowed = False

    async def offer(self, cursor: Cursor, frames: tuple[str, ...]) -> None:
        """An event of this socket's audience, in log order (called by the dispatcher)."""
        if self.holding:
            if self.overflowed:
                DROPPED_BUFFER_FULL.inc(len(frames))
                return
            if len(self.pending) >= BUFFER_LIMIT:
                DROPPED_BUFFER_FULL.inc(len(frames) + sum(len(held) for _, held in self.pending))
                self.pending.clear()
                self.overflowed = True
                return
            self.pending.append((cursor, frames))
            return
        await self.send(cursor, frames)

    async def send(self, cursor: Cursor, frames: tuple[str, ...]) -> None:
        """Send an event's frames unless this socket already sent it."""
        if cursor <= self.sent:
            return
        self.sent = cursor
        for text in frames:
            await self._send_text(text)
        FRAMES_LIVE.inc(len(frames))

    def begin_replay(self) -> None:
        self.holding = True

    async def replay(self, cursor: Cursor, frames: tuple[str, ...]) -> None:
        """A replayed event: sent unless it already went out on this socket."""
        if self.low < cursor <= self.sent:
            return
        for text in frames:
            await self._send_text(text)
        FRAMES_REPLAY.inc(len(frames))

    def advance(self, cursor: Cursor) -> None:
        """The replay covered the log up to ``cursor`` (events of other views included)."""
        if cursor > self.sent:
            self.sent = cursor

    def take_overflow(self) -> bool:
        """Whether offers were dropped since the last call (then replay further)."""
        dropped, self.overflowed = self.overflowed, False
        return dropped

    async def end_replay(self, after: Cursor | None) -> None:
        """Send what was offered meanwhile and stop holding.

        After a resume (``after``: what the client said it had) the client
        has, through this socket, every event of its view up to ``sent``.
        """
        pending, self.pending = self.pending, []
        for cursor, frames in pending:
            await self.send(cursor, frames)
        self.holding = False
        if after is not None:
            self.anchored = True
            self.low = min(self.low, after)
