"""Delivery lanes: outbox workers on threads of their own, driven from an asyncio loop.

Push and webhook delivery have the same shape: a few workers (lanes), each
a synchronous outbox worker on a thread that keeps its database
connection, run by the same loop as every other worker
(workers.loop.run_forever). A wake-up (rows queued in this process, or
in another: Redis or NOTIFY) rings for one idle lane, not all of them; a
lane that found work rings for another before going on, in case there is
more. When nothing is due, the first lane sleeps until the next due time
the outbox knows of (a retry, a lease that lapses), at most the poll
interval, and the others until rung: an idle process costs one look per
poll interval, not one per lane.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from eventstore.runner import make_owner_id
from workers import wakeup
from workers.dbthreads import DatabaseThreads
from workers.loop import Delay, run_forever, until, wait_either

log = logging.getLogger(__name__)

#: How long a lane other than the first waits for a ring before it looks anyway.
SPARE_LANE_IDLE = 3600.0


class LaneWorker(Protocol):
    #: Set from the loop's thread to make a running round stop between sends.
    stopping: threading.Event

    def release_all(self) -> None: ...

    def close(self) -> None: ...


W = TypeVar("W", bound=LaneWorker)


@dataclass(frozen=True)
class Lanes(Generic[W]):
    """What a kind of delivery plugs into the lanes."""

    name: str  # "push delivery": in thread names and log records
    make: Callable[[str], W]  # the lane's worker, given its owner id (called on the lane's thread)
    round: Callable[[W], bool]  # one round of the worker: did it make progress?
    next_due: Callable[[W], dt.datetime | None]  # nothing was due: when something will be
    now: Callable[[], dt.datetime]
    signal: wakeup.Signal  # rung in this process when rows are queued
    channel: str  # the same hint from other processes (NOTIFY / Redis)
    chores: Callable[[W], object] | None = None  # the first lane's housekeeping, every chores_every seconds
    chores_every: float = 600.0


class Doorbell:
    """Wakes one idle lane per ring; a ring with no lane idle waits for the next one."""

    def __init__(self) -> None:
        self._idle: deque[asyncio.Event] = deque()
        self._pending = False

    def ring(self) -> None:
        while self._idle:
            event = self._idle.popleft()
            if not event.is_set():
                event.set()
                return
        self._pending = True

    def idle(self, event: asyncio.Event) -> None:
        if self._pending:
            self._pending = False
            event.set()
        elif event not in self._idle:
            self._idle.append(event)

    def busy(self, event: asyncio.Event) -> None:
        if event in self._idle:
            self._idle.remove(event)


async def _ring_on_wakeups(stop: asyncio.Event, signal: wakeup.Signal, bell: Doorbell) -> None:
    loop = asyncio.get_running_loop()
    woken = signal.register(loop)
    try:
        while not stop.is_set():
            await wait_either(stop, woken, 3600)
            if woken.is_set():
                woken.clear()
                bell.ring()
    finally:
        signal.unregister(loop, woken)


async def _lane(lanes: Lanes[W], index: int, stop: asyncio.Event, bell: Doorbell, poll: float) -> None:
    thread = DatabaseThreads(1, f"{lanes.name.replace(' ', '-')}-{index}")
    me = asyncio.Event()
    worker: W | None = None
    last_chores = time.monotonic()

    def work() -> Delay:
        nonlocal last_chores
        assert worker is not None
        progressed = lanes.round(worker)
        if index == 0 and lanes.chores is not None and time.monotonic() - last_chores > lanes.chores_every:
            last_chores = time.monotonic()
            lanes.chores(worker)
        if progressed:
            return 0
        if index != 0:
            return SPARE_LANE_IDLE
        return until(lanes.next_due(worker), lanes.now(), cap=poll)

    async def step() -> Delay:
        bell.busy(me)
        delay = await thread(work)()
        if delay == 0:
            bell.ring()  # there may be more: another lane looks too
        else:
            bell.idle(me)
        return delay

    try:
        worker = await thread(lambda: lanes.make(f"{make_owner_id()}:{index}"))()
        await run_forever(step, wake=me, stop=stop, idle=poll, name=f"{lanes.name} lane {index}")
    finally:
        bell.busy(me)
        if worker is not None:
            worker.stopping.set()
            try:
                await thread(worker.release_all)()
                worker.close()
            except Exception:
                log.exception("%s lane %d could not release its rows", lanes.name, index)
        await asyncio.to_thread(thread.close_connections)
        thread.shutdown()


async def run_lanes(lanes: Lanes[W], stop: asyncio.Event, *, count: int, poll: float) -> None:
    """Run ``count`` lanes of ``lanes`` until ``stop`` is set."""
    bell = Doorbell()
    tasks = [asyncio.create_task(_lane(lanes, i, stop, bell, poll), name=f"{lanes.name} lane {i}") for i in range(count)]
    tasks.append(asyncio.create_task(_ring_on_wakeups(stop, lanes.signal, bell), name=f"{lanes.name} doorbell"))
    tasks.append(asyncio.create_task(wakeup.relay_wakeups(stop, lanes.channel, lanes.signal), name=f"{lanes.name} listen"))
    await asyncio.gather(*tasks)
