"""A dispatcher stops when told, even when cancellation meets a message arriving.

Under Python 3.11, ``asyncio.wait_for`` returns the result of an inner wait
that completed in the same moment as its caller's cancellation, and drops
the cancellation: a dispatcher loop built on it outlived ``stop()`` until
the stopper's own timeout (a test's teardown waited five seconds, about one
run in three; a Daphne shutdown would have too).
"""

from __future__ import annotations

import asyncio

import pytest

from realtime.dispatcher import Dispatcher

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.asyncio
async def test_the_loop_ends_on_cancel_even_as_a_message_comes_in():
    dispatcher = Dispatcher()
    handled: list[dict[str, object]] = []

    async def handle(message: dict[str, object]) -> None:
        handled.append(message)

    dispatcher._handle = handle  # type: ignore[method-assign]  # only the loop is under test
    for _ in range(20):
        task = asyncio.get_running_loop().create_task(dispatcher._run())
        await asyncio.sleep(0)  # the loop waits on its inbox
        dispatcher._inbox.put_nowait({"type": "parley.ephemeral"})
        task.cancel()  # in the same moment as the message
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task}, "the dispatcher's loop kept running after it was cancelled"
        assert task.cancelled()


@pytest.mark.asyncio
async def test_stop_ends_a_task_that_swallowed_its_first_cancellation():
    dispatcher = Dispatcher()
    told = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            told.append("cancelled")  # swallowed, as a library's wait may do
        await asyncio.Event().wait()  # only a second cancellation ends this

    task = asyncio.get_running_loop().create_task(stubborn())
    dispatcher._tasks = [task]
    await asyncio.sleep(0)
    stopping = asyncio.get_running_loop().create_task(dispatcher.stop())
    # Nobody cancels stop() itself here: before the fix it waited for the task for ever.
    done, _ = await asyncio.wait({stopping}, timeout=3)
    assert done == {stopping}, "stop() is still waiting for a task that ignored one cancellation"
    assert told == ["cancelled"]
    assert task.cancelled(), "stop returned with the task still running"
    assert dispatcher._tasks == []
