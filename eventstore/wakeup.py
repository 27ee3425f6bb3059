"""Wake-up hints: "something new was committed, look now".

They only make waiting loops react at once instead of at their next poll;
correctness never depends on them. Within a process a :class:`Signal`
wakes asyncio waiters; across processes PostgreSQL's
LISTEN/NOTIFY carries the same hint (:class:`PostgresNotifier` sends,
:func:`relay_postgres_notifications` receives).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from eventstore.loop import wait_either

log = logging.getLogger(__name__)


class Signal:
    """A process-wide, thread-safe wake-up for asyncio loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def register(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        """An asyncio.Event of ``loop`` that is set on every notify()."""
        event = asyncio.Event()
        with self._lock:
            self._waiters.add((loop, event))
        return event

    def unregister(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters.discard((loop, event))

    def notify(self) -> None:
        """Wake every registered waiter (thread-safe; called after commit)."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)


#: Events were appended to the log.
appended = Signal()
register = appended.register
unregister = appended.unregister
notify = appended.notify


def postgres_params(alias: str = "default") -> dict[str, Any] | None:
    """psycopg connection parameters of a Django database, or None if it is not PostgreSQL."""
    from django.db import connections

    conn = connections[alias]
    if conn.vendor != "postgresql":
        return None
    params = dict(conn.get_connection_params())
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return params


class PostgresNotifier:
    """Sends ``NOTIFY <channel>`` from a thread of its own, after commits.

    NOTIFY inside the committing transaction would be simpler, but
    PostgreSQL serialises the commits of notifying transactions (one
    cluster-wide lock from pre-commit to the end of commit, WAL flush
    included), which we measured costing a third of the append rate with
    two writers. Here the caller only sets a flag; one connection per
    process and channel sends one NOTIFY per burst, outside any data
    transaction.
    """

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._pending = threading.Event()
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._params: dict[str, dict[str, Any]] = {}

    def request(self, alias: str = "default") -> None:
        """Send a NOTIFY soon, if cross-process wake-ups are on and the database is PostgreSQL."""
        from django.conf import settings

        if not settings.PARLEY_CROSS_PROCESS_WAKEUP:
            return
        params = postgres_params(alias)
        if params is None:
            return
        with self._lock:
            self._params[alias] = params
            if alias not in self._threads or not self._threads[alias].is_alive():
                t = threading.Thread(target=self._run, args=(alias,), name=f"notify-{self.channel}", daemon=True)
                self._threads[alias] = t
                t.start()
        self._pending.set()

    def _run(self, alias: str) -> None:
        import psycopg

        conn = None
        while True:
            self._pending.wait()
            self._pending.clear()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(autocommit=True, **self._params[alias])
                conn.execute(f"NOTIFY {self.channel}")
            except Exception:
                log.warning("NOTIFY %s failed; other processes fall back to polling", self.channel, exc_info=True)
                conn = None
                time.sleep(1)


async def relay_postgres_notifications(stop: asyncio.Event, channel: str, signal: Signal) -> None:
    """LISTEN on ``channel`` and turn each NOTIFY from any process into ``signal.notify()``."""
    params = postgres_params()
    if params is None:
        return
    import psycopg

    while not stop.is_set():
        try:
            aconn = await psycopg.AsyncConnection.connect(autocommit=True, **params)
            async with aconn:
                await aconn.execute(f"LISTEN {channel}")
                # Whatever was committed while we were not listening: look now.
                signal.notify()
                while not stop.is_set():
                    # The generator ends after the timeout, so stop is checked each second.
                    async for _ in aconn.notifies(timeout=1.0):
                        signal.notify()
        except Exception:
            log.warning("LISTEN %s lost; waiters fall back to polling", channel, exc_info=True)
            await wait_either(stop, asyncio.Event(), 2.0)
