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
import time
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
    #: Seconds closing waits at most for a thread that is busy.
    CLOSE_PATIENCE = 5.0

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        #: The threads that ran a call (and may hold a connection) since their last close.
        self._started: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
        """``await threads(fn)(*args)`` runs ``fn(*args)`` on one of the threads."""

        async def call(*args: Any, **kwargs: Any) -> T:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(self._run, fn, *args, **kwargs))

        return call

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        me = threading.get_ident()
        if me not in self._started:
            with self._lock:
                self._started.add(me)  # this thread may hold a connection from now on
        return _keeping_connection(fn, *args, **kwargs)

    def close_connections(self) -> None:
        """Close every thread's connection (tests, shutdown). Blocks until done.

        A connection can only be closed by its own thread, and the executor
        cannot be told which thread runs a call. So one call per possible
        thread goes in, each held until every thread that ever ran something
        has closed its connection: while held, a thread takes no other call,
        so the next one goes to another thread. A thread busy with a call of
        its own is waited for up to ``CLOSE_PATIENCE`` seconds from the start
        of the close; after that it keeps its connection until its next
        error, or the next close. (Waiting instead for one call on each of
        ``threads`` threads waited out a five-second timeout whenever the
        executor counted more threads idle than were: it does after calls
        queued while every thread was busy, and then queues the closing calls
        behind the idle ones instead of starting the missing threads.)
        """
        with self._lock:
            pending = set(self._started)
        if not pending:
            return
        closed = threading.Event()
        deadline = time.monotonic() + self.CLOSE_PATIENCE

        def close(_: int) -> None:
            me = threading.get_ident()
            if me in pending:
                try:
                    connection.close()
                finally:
                    with self._lock:
                        pending.discard(me)
                        self._started.discard(me)
                        if not pending:
                            closed.set()
            closed.wait(timeout=max(0.0, deadline - time.monotonic()))

        list(self._executor.map(close, range(self.threads)))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
