"""The timer and email workers sleep until their next due row and are woken
by the commit that schedules or queues one, instead of looking every second.

Each test sets the worker's longest sleep to an hour: the only way the row
is handled within the test's patience is the wake-up (or, for a row due a
little later, the sleep computed from its due time).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from collections.abc import Callable

import pytest
from django.core import mail
from django.db import connection, transaction

from notifications import mailer
from notifications.models import EmailOutbox
from workers import timers
from workers.models import Timer

pytestmark = pytest.mark.django_db(transaction=True)

PATIENCE = 30.0  # seconds a test waits for the worker before it fails (not a speed bound)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _in_thread(work: Callable[[], None]) -> None:
    """Run ``work`` on a thread of its own, with its own connection (another writer)."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    t.join()


async def _until(check: Callable[[], bool]) -> bool:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


def _run_worker(run: Callable[[asyncio.Event], object], act: Callable[[], None], done: Callable[[], bool]) -> bool:
    async def scenario() -> bool:
        stop = asyncio.Event()
        task = asyncio.create_task(run(stop))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)  # the worker found nothing due and went to sleep
        await asyncio.to_thread(_in_thread, act)
        try:
            return await _until(done)
        finally:
            stop.set()
            await task

    return asyncio.run(scenario())


@pytest.fixture
def fired(monkeypatch):
    monkeypatch.setattr(timers, "IDLE_SECONDS", 3600.0)
    seen: list[tuple[str, dt.datetime]] = []
    timers.register("test.wakeup", lambda due, now: seen.append((due.key, now)))
    yield seen
    timers._handlers.pop("test.wakeup", None)


def _fired(key: str) -> Callable[[], bool]:
    def check() -> bool:
        ok = Timer.objects.filter(key=key, state=Timer.FIRED).exists()
        connection.close()
        return ok

    return check


def test_a_timer_scheduled_while_the_worker_sleeps_wakes_it(fired):
    def schedule() -> None:
        with transaction.atomic():
            timers.schedule(key="t-now", kind="test.wakeup", subject="s", due_at=_now())

    assert _run_worker(timers.run, schedule, _fired("t-now"))
    assert [key for key, _ in fired] == ["t-now"]


def test_a_timer_due_soon_fires_at_its_time_not_at_the_next_idle_look(fired):
    due = _now() + dt.timedelta(seconds=1.5)

    def schedule() -> None:
        with transaction.atomic():
            timers.schedule(key="t-soon", kind="test.wakeup", subject="s", due_at=due)

    assert _run_worker(timers.run, schedule, _fired("t-soon"))
    [(key, at)] = fired
    assert key == "t-soon" and at >= due  # never early


def test_an_email_queued_while_the_worker_sleeps_is_sent(monkeypatch, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(mailer, "IDLE_SECONDS", 3600.0)
    mail.outbox = []

    def queue() -> None:
        with transaction.atomic():
            mailer.queue("wake-1", {"to": "ada@example.com", "subject": "Hello", "text": "Hi", "html": "<p>Hi</p>",
                                    "headers": {}, "customer_id": uuid.uuid4()}, _now())

    def sent() -> bool:
        ok = EmailOutbox.objects.filter(key="wake-1", state=EmailOutbox.SENT).exists()
        connection.close()
        return ok

    assert _run_worker(mailer.run, queue, sent)
    assert [m.subject for m in mail.outbox] == ["Hello"]


@pytest.mark.postgres
def test_one_listener_carries_every_queues_wakeups_from_other_processes(settings):
    """A NOTIFY on one queue's channel (another process queued rows) wakes that queue's workers alone."""
    import psycopg

    settings.REDIS_URL = ""  # NOTIFY alone: a Redis listener's first look would ring every queue

    from workers import wakeup

    timers_signal, email_signal = wakeup.Signal(), wakeup.Signal()
    params = wakeup.postgres_params()
    assert params is not None

    async def scenario() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        timers_woken, email_woken = timers_signal.register(loop), email_signal.register(loop)
        task = asyncio.create_task(
            wakeup.relay_wakeups(stop, {"parley_test_timers": timers_signal, "parley_test_email": email_signal})
        )
        try:
            # Listening: the look it takes once it listens rings both (waited for, not slept on: a slow
            # connection's look, after the clear below, would ring the timers too).
            await asyncio.wait_for(asyncio.gather(timers_woken.wait(), email_woken.wait()), PATIENCE)
            timers_woken.clear()
            email_woken.clear()
            with await asyncio.to_thread(psycopg.connect, autocommit=True, **params) as other_process:
                other_process.execute("NOTIFY parley_test_email")
            await asyncio.wait_for(email_woken.wait(), PATIENCE)
            await asyncio.sleep(0.2)
            return email_woken.is_set(), timers_woken.is_set()
        finally:
            stop.set()
            await task

    assert asyncio.run(scenario()) == (True, False)


class _CountingSignal:
    """A Signal stand-in that counts notify() calls (the relay's only use of it)."""

    def __init__(self) -> None:
        self.count = 0

    def notify(self) -> None:
        self.count += 1


async def _until_count(signal: _CountingSignal, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while signal.count < count:
        assert asyncio.get_running_loop().time() < deadline, f"{signal.count} wake-ups, waited for {count}"
        await asyncio.sleep(0.01)


def _echo_scenario(relay, send: Callable[[str], None]) -> int:  # type: ignore[no-untyped-def]
    """Start ``relay``; once it listens, send this process's token, then another's; count the wake-ups."""
    from workers import wakeup

    signal = _CountingSignal()

    async def scenario() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(relay(stop, {"parley_test_echo": signal}))
        try:
            await _until_count(signal, 1)  # listening: the look it takes on connecting
            await asyncio.to_thread(send, wakeup.origin())
            await asyncio.to_thread(send, "another-process")
            await _until_count(signal, 2)  # the other process's; ours came first, in order
            await asyncio.sleep(0.2)
            return signal.count
        finally:
            stop.set()
            await task

    return asyncio.run(scenario())


@pytest.mark.postgres
def test_a_process_does_not_wake_itself_again_with_its_own_notify():
    """Its waiters were woken in-process already; the echo would cost each follower an empty batch."""
    import psycopg

    from workers import wakeup

    params = wakeup.postgres_params()
    assert params is not None

    def send(token: str) -> None:
        with psycopg.connect(autocommit=True, **params) as conn:
            conn.execute("SELECT pg_notify('parley_test_echo', %s)", (token,))

    assert _echo_scenario(wakeup._relay_postgres, send) == 2  # the first look, and the other process's


@pytest.mark.redis
def test_a_process_does_not_wake_itself_again_with_its_own_redis_publish(settings):
    import redis

    from workers import wakeup

    client = redis.Redis.from_url(settings.REDIS_URL)

    def send(token: str) -> None:
        client.publish(wakeup._redis_channel("parley_test_echo"), token)

    def relay(stop, channels):  # type: ignore[no-untyped-def]
        return wakeup._relay_redis(stop, channels, settings.REDIS_URL)

    try:
        assert _echo_scenario(relay, send) == 2
    finally:
        client.close()


def test_each_process_has_a_token_of_its_own(monkeypatch):
    """A forked child (a process id of its own) must not take its parent's wake-ups for its own echo."""
    import os

    from workers import wakeup

    parent = wakeup.origin()
    assert wakeup.origin() == parent
    pid = os.getpid()
    monkeypatch.setattr(wakeup.os, "getpid", lambda: pid + 1)
    child = wakeup.origin()
    assert child != parent
    assert wakeup.origin() == child
    monkeypatch.undo()
    assert wakeup.origin() != child
