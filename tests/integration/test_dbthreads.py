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


def test_closing_waits_only_for_the_threads_that_were_started():
    # The executor starts threads as calls need them: one call, one thread.
    # Closing used to hand one call to each of ``threads`` threads, held at a
    # barrier for all of them: the executor started the missing ones, or the
    # barrier waited out its five seconds when the idle thread took two calls.
    threads = DatabaseThreads(4, "closing-few")
    try:
        asyncio.run(threads(connection.ensure_connection)())
        assert len(_threads("closing-few")) == 1
        threads.close_connections()
        assert len(_threads("closing-few")) == 1, "closing started threads that never held a connection"
    finally:
        threads.shutdown()


def test_closing_threads_that_never_ran_anything_does_nothing():
    threads = DatabaseThreads(3, "closing-none")
    try:
        threads.close_connections()
        assert _threads("closing-none") == []
    finally:
        threads.shutdown()
