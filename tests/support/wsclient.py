"""A websocket client that follows docs/protocol.md to the letter, for end-to-end tests.

It does what the pages do: on every (re)connect it sends ``resume`` with the
position of the last event frame it applied; it answers ``resync`` with
``resume`` on the same socket; when the socket closes (4000, a dead
process, anything but 4401/4403) it reconnects, to the next server in its
list, with a short backoff, and resumes. It never reloads anything over
HTTP. It records every event frame it applied, so a test can check that
every acknowledged message arrived exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import websockets

#: Frames that name a logged event (and carry its position).
EVENT_FRAMES = {"message.sent", "message.edited", "message.read", "badge", "conversation.updated"}


@dataclass
class ProtocolClient:
    urls: list[str]  # ws://host:port/ws/v1/?token=... of each server, tried in turn
    name: str = "client"
    position: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    sent_ids: Counter[str] = field(default_factory=Counter)  # message.sent frames per message id
    reconnects: int = 0
    resyncs: int = 0
    closes: list[int] = field(default_factory=list)
    unauthorized: asyncio.Event = field(default_factory=asyncio.Event)
    live: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: bool = False
    ws: Any = None
    _task: asyncio.Task[None] | None = None
    _which: int = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ws-{self.name}")

    async def stop(self) -> None:
        self.stopped = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        delay = 0.1
        while not self.stopped:
            url = self.urls[self._which % len(self.urls)]
            try:
                async with websockets.connect(url, open_timeout=5, ping_interval=None, max_queue=None) as ws:
                    self.ws = ws
                    self.live.clear()
                    await ws.send(json.dumps({"type": "resume", "after": self.position}))
                    delay = 0.1
                    async for raw in ws:
                        await self._receive(ws, json.loads(raw))
                    self.closes.append(ws.close_code or 1006)
                    if ws.close_code in (4401, 4403):
                        self.unauthorized.set()
                        return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.closes.append(1006)
            self.ws = None
            if self.stopped:
                return
            self.reconnects += 1
            self._which += 1  # the next server: this one may be gone
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    async def _receive(self, ws: Any, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "resumed":
            self.position = frame["position"]
            self.live.set()
        elif kind == "resync":
            # Every frame before this one has been applied: position is exact.
            self.resyncs += 1
            self.live.clear()
            await ws.send(json.dumps({"type": "resume", "after": self.position}))
        elif kind in EVENT_FRAMES:
            self.frames.append(frame)
            self.position = frame["position"]
            if kind == "message.sent":
                self.sent_ids[frame["message"]["message_id"]] += 1

    def got(self, message_ids: set[str]) -> bool:
        return message_ids <= set(self.sent_ids)

    def duplicates(self) -> dict[str, int]:
        return {m: n for m, n in self.sent_ids.items() if n > 1}


async def wait_for(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())
