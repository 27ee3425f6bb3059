"""Read-your-writes: waiting until the read models include a position.

A client that has just written (and was told the position of its write)
may ask a read to wait for it (``min_position``); the wait is bounded, and
the answer carries the position it is current to either way.
"""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async

from eventstore import partitions
from eventstore.store import EventStore
from readmodels.projections import PIPELINE

READ_YOUR_WRITES_TIMEOUT = 2.0


def has_processed(position: int) -> bool:
    """Whether the read models include the event at ``position`` (every partition has come past it)."""
    return position == 0 or partitions.watermark(PIPELINE) >= EventStore().cursor_at(position)


async def wait_until_processed(position: int, timeout: float = READ_YOUR_WRITES_TIMEOUT) -> bool:
    """Wait (at most ``timeout``) until the read models include ``position``."""
    deadline = time.monotonic() + timeout
    check = sync_to_async(has_processed)
    delay = 0.005
    while True:
        if await check(position):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.05)
