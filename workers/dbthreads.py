"""Threads that run ORM code for async code and keep their database connection.

Async code (the websocket consumers, the dispatcher, the workers) hands ORM
calls to threads. Connecting for each call costs milliseconds, and handing a
pooled connection out and back costs a health-check round trip (one more
PostgreSQL transaction) each time. These threads keep their connection
between calls instead; after an error it is closed, so the next call starts
on a fresh one, and one the server closed while it was idle (a database
restart) is noticed before use, without a round trip (workers.outage). The number of threads bounds the connections they hold.

(channels' database_sync_to_async closes the connection after each call,
which is what the per-call cost is; and, under asgiref 3.13, it can miss the
connection altogether, because asgiref runs the call in a copy of the
caller's context: measured, one pooled connection leaked per websocket.)
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import connection

from workers.outage import drop_dead_connection

T = TypeVar("T")


def _keeping_connection(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # One the server closed meanwhile (a restart) is replaced before use, not after a failure.
    drop_dead_connection()
    try:
        return fn(*args, **kwargs)
    except BaseException:
        connection.close()  # whatever the error did to it, start afresh
        raise


class DatabaseThreads:
    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        #: The threads started so far: the executor starts them one by one, as calls come.
        self._started: set[int] = set()

    def __call__(self, fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
        """``await threads(fn)(*args)`` runs ``fn(*args)`` on one of the threads."""

        async def call(*args: Any, **kwargs: Any) -> T:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(self._run, fn, *args, **kwargs))

        return call

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._started.add(threading.get_ident())  # this thread may hold a connection from now on
        return _keeping_connection(fn, *args, **kwargs)

    def close_connections(self) -> None:
        """Close every thread's connection (tests, shutdown). Blocks until done.

        A connection can only be closed by its own thread: one call per
        thread started so far, held at a barrier until every such thread has
        one. (The executor starts threads only as calls need them, so
        waiting for ``threads`` of them would wait out the timeout whenever
        fewer had ever been needed.)
        """
        parties = len(self._started)
        if not parties:
            return
        barrier = threading.Barrier(parties)

        def close(_: int) -> None:
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass  # a thread was busy: its connection closes after its next error, or at exit
            connection.close()

        list(self._executor.map(close, range(parties)))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
