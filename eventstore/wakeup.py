"""Process-local wake-up for consumers after a commit that appended events.

It is only a hint that makes consumers react at once instead of at their
next poll; correctness never depends on it. Across processes PostgreSQL's
LISTEN/NOTIFY delivers the same hint (see ``eventstore.runner``).
"""

from __future__ import annotations

import asyncio
import threading

_lock = threading.Lock()
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
_generation = 0
_condition = threading.Condition(_lock)


def register(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """An asyncio.Event of ``loop`` that is set on every notify()."""
    event = asyncio.Event()
    with _lock:
        _waiters.add((loop, event))
    return event


def unregister(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    with _lock:
        _waiters.discard((loop, event))


def notify() -> None:
    """Wake every registered waiter (thread-safe; called after commit)."""
    global _generation
    with _lock:
        _generation += 1
        waiters = list(_waiters)
        _condition.notify_all()
    for loop, event in waiters:
        if not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


def wait(timeout: float) -> None:
    """Block the calling thread until the next notify() or ``timeout``."""
    with _lock:
        seen = _generation
        _condition.wait_for(lambda: _generation != seen, timeout=timeout)
