"""Push delivery lanes: delivery workers on threads of their own, driven from an asyncio loop.

Each lane is a ``DeliveryWorker`` on a thread that keeps its database
connection, run by the same loop as every other worker
(eventstore.loop.run_forever). A wake-up (rows queued here, or in another
process: Redis or NOTIFY) rings for one idle lane, not all of them; a lane
that found work rings for another before going on, in case there is more.
When nothing is due, the first lane sleeps until the next due time, hold
or lapsed lease the outbox knows of (or the poll interval), and the others
until rung: an idle process costs one claim per poll interval, not one per
lane.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from django.conf import settings

from eventstore import wakeup
from eventstore.dbthreads import DatabaseThreads
from eventstore.loop import Delay, run_forever, until, wait_either
from eventstore.runner import make_owner_id
from notifications.config import DeliveryConfig, push_configured, utcnow
from notifications.outbox import NOTIFY_CHANNEL, queued
from notifications.worker import DeliveryWorker

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600.0
#: How long a lane other than the first waits for a ring before it looks anyway.
SPARE_LANE_IDLE = 3600.0


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


async def _ring_on_wakeups(stop: asyncio.Event, bell: Doorbell) -> None:
    loop = asyncio.get_running_loop()
    woken = queued.register(loop)
    try:
        while not stop.is_set():
            await wait_either(stop, woken, 3600)
            if woken.is_set():
                woken.clear()
                bell.ring()
    finally:
        queued.unregister(loop, woken)


async def _lane(index: int, stop: asyncio.Event, config: DeliveryConfig, bell: Doorbell, poll: float) -> None:
    thread = DatabaseThreads(1, f"push-lane-{index}")
    me = asyncio.Event()
    worker: DeliveryWorker | None = None
    last_purge = time.monotonic()

    async def step() -> Delay:
        nonlocal last_purge
        assert worker is not None
        bell.busy(me)
        result = await thread(worker.run_once)()
        if index == 0 and time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
            last_purge = time.monotonic()
            await thread(worker.purge)()
        if result.progressed:
            bell.ring()  # there may be more: another lane looks too
            return 0
        bell.idle(me)
        if index != 0:
            return SPARE_LANE_IDLE
        return until(result.next_wake, utcnow(), cap=poll)

    try:
        worker = await thread(lambda: DeliveryWorker(config, owner=f"{make_owner_id()}:{index}"))()
        await run_forever(step, wake=me, stop=stop, idle=poll, name=f"push delivery lane {index}")
    finally:
        bell.busy(me)
        if worker is not None:
            worker.stopping.set()
            try:
                await thread(worker.release_all)()
                worker.close()
            except Exception:
                log.exception("push delivery lane %d could not release its devices", index)
        await asyncio.to_thread(thread.close_connections)
        thread.shutdown()


async def run_delivery_workers(stop: asyncio.Event, *, lanes: int | None = None) -> None:
    """Run push delivery until ``stop`` is set: ``lanes`` workers on threads of their own."""
    if not push_configured():
        log.warning("VAPID_PRIVATE_KEY is not set: push delivery is off (python manage.py generate_vapid_keys)")
        await stop.wait()
        return
    config = DeliveryConfig.from_settings()
    count = lanes or settings.PUSH_DELIVERY_WORKERS
    poll = settings.PUSH_POLL_INTERVAL
    bell = Doorbell()
    tasks = [asyncio.create_task(_lane(i, stop, config, bell, poll), name=f"push-lane-{i}") for i in range(count)]
    tasks.append(asyncio.create_task(_ring_on_wakeups(stop, bell), name="push-doorbell"))
    tasks.append(asyncio.create_task(wakeup.relay_wakeups(stop, NOTIFY_CHANNEL, queued), name="push-listen"))
    await asyncio.gather(*tasks)
