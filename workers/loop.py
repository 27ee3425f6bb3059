"""The one loop every background worker runs: step, then wait for a wake-up.

Consumers of the log, the timers and the real-time dispatcher's
housekeeping all have the same shape: do a step of work; if it made
progress, do the next at once; otherwise sleep until something wakes the
worker (a commit in this process, a NOTIFY from another) or a timeout
passes; after a failure, back off exponentially. ``run_forever`` is that
shape, written once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable

from observability.logs import was_reported

log = logging.getLogger(__name__)

#: What a step returns: 0 to run again at once, a positive number of
#: seconds to wait at most (a wake-up cuts it short), None to wait the
#: worker's idle time.
Delay = float | None


async def wait_either(stop: asyncio.Event, woken: asyncio.Event, timeout: float) -> None:
    """Sleep until ``stop`` or ``woken`` is set, or ``timeout`` passes."""
    if stop.is_set() or woken.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def until(due: dt.datetime | None, now: dt.datetime, *, cap: float, floor: float = 0.01) -> float:
    """Seconds a worker may sleep before ``due`` (None: nothing scheduled), within [floor, cap].

    The cap bounds how late work that nothing announced is seen; the floor
    keeps a row that is due but held by another worker from making the
    loop spin.
    """
    if due is None:
        return cap
    return max(floor, min(cap, (due - now).total_seconds()))


def backoff(failures: int, *, base: float = 0.2, cap: float = 30.0) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


async def run_forever(
    step: Callable[[], Awaitable[Delay]],
    *,
    wake: asyncio.Event,
    stop: asyncio.Event,
    idle: float,
    name: str,
) -> None:
    """Run ``step`` until ``stop`` is set (see ``Delay`` for what it returns).

    ``wake`` is cleared before each step, so a wake-up that arrives while a
    step runs is not lost: the next wait returns at once. A step that raises
    is logged and retried after a backoff that wake-ups do not cut short
    (a failing database should not be hammered at every commit).
    """
    failures = 0
    while not stop.is_set():
        wake.clear()
        try:
            delay = await step()
            failures = 0
        except Exception as exc:
            failures += 1
            pause = backoff(failures)
            if was_reported(exc):
                log.warning("%s failed (%d in a row; logged above); retrying in %.1fs", name, failures, pause)
            else:
                log.exception("%s failed (%d in a row); retrying in %.1fs", name, failures, pause)
            await wait_either(stop, asyncio.Event(), pause)
            continue
        if delay == 0:
            await asyncio.sleep(0)  # let the loop breathe between back-to-back steps
            continue
        await wait_either(stop, wake, idle if delay is None else delay)
