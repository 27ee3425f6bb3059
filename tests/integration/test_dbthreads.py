"""Database threads keep their connection between calls, and close them all on request."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connections

from workers.dbthreads import DatabaseThreads

pytestmark = pytest.mark.django_db(transaction=True)


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def _wrapper() -> object:
    """This thread's database connection: Django's wrapper of it (one per thread)."""
    wrapper = connections["default"]
    wrapper.ensure_connection()
    return wrapper


def _is_closed(wrapper: object) -> bool:
    """Whether that thread's connection was closed (handed back, with a pool)."""
    return wrapper.connection is None  # type: ignore[attr-defined]


def test_closing_closes_the_connection_of_the_thread_that_held_it():
    threads = DatabaseThreads(4, "closing-one")
    try:
        wrapper = asyncio.run(threads(_wrapper)())
        assert not _is_closed(wrapper)
        threads.close_connections()
        assert _is_closed(wrapper)
    finally:
        threads.shutdown()


def test_closing_does_not_wait_for_threads_the_executor_never_starts():
    # The executor starts a thread for a call only when it counts none idle,
    # and its count runs above the idle threads after calls queued while every
    # thread was busy (a loaded web process). That state is set up directly
    # here: closing used to wait at a barrier for one call on each of four
    # threads, while the executor queued three of the calls behind the one
    # thread it had, until the barrier gave up after five seconds.
    threads = DatabaseThreads(4, "closing-few")
    threads.CLOSE_PATIENCE = 60.0  # waiting for threads that never come would take a minute
    try:
        wrapper = asyncio.run(threads(_wrapper)())
        for _ in range(3):
            threads._executor._idle_semaphore.release()  # type: ignore[attr-defined]
        closing = threading.Thread(target=threads.close_connections)
        closing.start()
        # Closing one idle thread's connection takes a few thread hand-offs; the
        # old barrier gave up after five seconds, the patience here is sixty.
        closing.join(timeout=3)
        assert not closing.is_alive(), "closing waited for threads that were never started"
        assert _is_closed(wrapper)
    finally:
        threads.shutdown()


def test_a_busy_thread_is_waited_for_and_then_closed_too():
    threads = DatabaseThreads(2, "closing-busy")
    release = threading.Event()
    busy_started = threading.Event()
    held: list[object] = []

    def busy() -> None:
        held.append(_wrapper())
        busy_started.set()
        release.wait(10)

    async def both() -> object:
        idle_wrapper, _ = await asyncio.gather(threads(_wrapper)(), threads(busy)())
        return idle_wrapper

    got: list[object] = []
    runner = threading.Thread(target=lambda: got.append(asyncio.run(both())))
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
        assert _is_closed(held[0]) and _is_closed(got[0])
    finally:
        release.set()
        threads.shutdown()


def test_closing_threads_that_never_ran_anything_does_nothing():
    threads = DatabaseThreads(3, "closing-none")
    try:
        threads.close_connections()
        assert _threads("closing-none") == []
    finally:
        threads.shutdown()
