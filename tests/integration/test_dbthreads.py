"""Database threads keep their connection between calls, and close them all on request."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection

from workers.dbthreads import DatabaseThreads

pytestmark = pytest.mark.django_db(transaction=True)


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def test_a_thread_keeps_its_connection_between_calls_and_closing_closes_it():
    threads = DatabaseThreads(4, "keeping")

    def connection_id() -> int:
        connection.ensure_connection()
        return id(connection.connection)

    async def twice() -> tuple[int, int]:
        return await threads(connection_id)(), await threads(connection_id)()

    try:
        first, second = asyncio.run(twice())
        assert first == second  # one thread was needed, and it kept its connection
        threads.close_connections()

        def closed() -> bool:
            return connection.connection is None

        assert asyncio.run(threads(closed)())
    finally:
        threads.shutdown()


def test_closing_does_not_wait_for_threads_that_were_never_needed():
    # Ten calls one after the other: one thread ran them all, and the executor
    # counts it idle ten times over, so it starts no thread for the calls that
    # close. Closing used to wait at a barrier for one call on each of the
    # four threads: the other three calls sat in the queue until it timed out.
    threads = DatabaseThreads(4, "closing-few")
    threads.CLOSE_PATIENCE = 60.0  # a wait for threads that never come would be a minute

    async def ten() -> None:
        for _ in range(10):
            await threads(connection.ensure_connection)()

    try:
        asyncio.run(ten())
        assert len(_threads("closing-few")) == 1
        closing = threading.Thread(target=threads.close_connections)
        closing.start()
        closing.join(timeout=20)
        assert not closing.is_alive(), "closing waited for threads that never held a connection"

        def closed() -> bool:
            return connection.connection is None

        assert asyncio.run(threads(closed)())
    finally:
        threads.shutdown()


def test_a_busy_thread_is_waited_for_and_then_closed_too():
    threads = DatabaseThreads(2, "closing-busy")
    release = threading.Event()
    busy_started = threading.Event()

    def busy() -> None:
        connection.ensure_connection()
        busy_started.set()
        release.wait(10)

    async def both() -> None:
        await asyncio.gather(threads(connection.ensure_connection)(), threads(busy)(), return_exceptions=False)

    runner = threading.Thread(target=asyncio.run, args=(both(),))
    try:
        runner.start()
        assert busy_started.wait(10)
        closing = threading.Thread(target=threads.close_connections)
        closing.start()
        closing.join(timeout=0.5)
        assert closing.is_alive()  # it waits for the busy thread to take its call
        release.set()
        closing.join(timeout=20)
        assert not closing.is_alive()
        runner.join(timeout=10)
        # Both threads' connections are closed: every call now finds none open.
        flags = asyncio.run(_closed_on_each(threads, 2))
        assert flags == [True, True]
    finally:
        release.set()
        threads.shutdown()


async def _closed_on_each(threads: DatabaseThreads, n: int) -> list[bool]:
    """Whether each of ``n`` threads found its connection closed (the calls held
    together, so that each runs on a thread of its own)."""
    gate = threading.Barrier(n)

    def check() -> bool:
        is_closed = connection.connection is None
        gate.wait(timeout=10)
        return is_closed

    return list(await asyncio.gather(*(threads(check)() for _ in range(n))))


def test_closing_threads_that_never_ran_anything_does_nothing():
    threads = DatabaseThreads(3, "closing-none")
    try:
        threads.close_connections()
        assert _threads("closing-none") == []
    finally:
        threads.shutdown()
