"""Wake-up hints: "something new was committed, look now".

They only make waiting loops react at once instead of at their next poll;
correctness never depends on them. Within a process a :class:`Signal`
wakes asyncio waiters; across processes Redis pub/sub or PostgreSQL's
LISTEN/NOTIFY carries the same hint (:class:`CrossProcessNotifier` sends,
:func:`relay_wakeups` receives).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from workers.loop import Delay, run_forever, wait_either

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


async def run_woken_by(
    signal: Signal, step: Callable[[], Awaitable[Delay]], *, stop: asyncio.Event, idle: float, name: str
) -> None:
    """``run_forever(step)``, woken whenever ``signal`` is notified in this process."""
    loop = asyncio.get_running_loop()
    woken = signal.register(loop)
    try:
        await run_forever(step, wake=woken, stop=stop, idle=idle, name=name)
    finally:
        signal.unregister(loop, woken)


#: Events were appended to the log.
appended = Signal()
#: The NOTIFY (and Redis) channel of appends in other processes.
APPENDS_CHANNEL = "parley_events"
register = appended.register
unregister = appended.unregister
notify = appended.notify


_origin: tuple[int, str] = (0, "")


def origin() -> str:
    """This process's token, sent with each cross-process wake-up so its own relay can skip the echo.

    A process hears its own Redis publishes and NOTIFYs like anyone else's;
    its waiters were already woken in-process, so the echo would only make
    every follower run one more empty batch. Keyed by pid, so a forked child
    gets a token of its own.
    """
    global _origin
    pid = os.getpid()
    if _origin[0] != pid:
        _origin = (pid, f"{pid}-{uuid.uuid4().hex[:12]}")
    return _origin[1]


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


def _redis_channel(channel: str) -> str:
    from django.conf import settings

    return f"{getattr(settings, 'PARLEY_CHANNEL_PREFIX', 'parley')}:wake:{channel}"


class CrossProcessNotifier:
    """Tells other processes "look now" after commits, from a thread of its own.

    Through Redis PUBLISH when REDIS_URL is set, which costs PostgreSQL
    nothing; through PostgreSQL NOTIFY otherwise, and whenever a Redis
    publish fails, so a Redis outage costs a transaction per wake-up but
    never the wake-up itself. NOTIFY is sent from a connection of its own,
    outside the data transaction: PostgreSQL serialises the commits of
    notifying transactions (one cluster-wide lock from pre-commit to the end
    of commit, WAL flush included), which we measured costing a third of the
    append rate with two writers. The caller only sets a flag; one send
    covers every commit made while the previous one was going out.
    """

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._pending = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._params: dict[str, Any] | None = None

    def request(self, alias: str = "default") -> None:
        """Send a wake-up soon, if cross-process wake-ups are on."""
        from django.conf import settings

        if not settings.PARLEY_CROSS_PROCESS_WAKEUP:
            return
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._params = postgres_params(alias)
                    self._thread = threading.Thread(target=self._run, name=f"wake-{self.channel}", daemon=True)
                    self._thread.start()
        self._pending.set()

    def _run(self) -> None:
        from django.conf import settings

        redis_url = getattr(settings, "REDIS_URL", "")
        client = None
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        notify = _Notify(self.channel, self._params)
        token = origin()
        failing = False
        while True:
            self._pending.wait()
            self._pending.clear()
            if client is not None:
                try:
                    client.publish(_redis_channel(self.channel), token)
                    if failing:
                        log.info("wake-ups go through Redis again")
                    failing = False
                    continue
                except Exception:
                    if not failing:
                        log.warning("Redis unreachable: wake-ups go through PostgreSQL NOTIFY meanwhile", exc_info=True)
                    failing = True
            notify.send(token)


class _Notify:
    """NOTIFY on a connection of its own (nothing when the database is not PostgreSQL)."""

    def __init__(self, channel: str, params: dict[str, Any] | None) -> None:
        self.channel, self.params = channel, params
        self.conn: Any = None

    def send(self, token: str) -> None:
        if self.params is None:
            return
        import psycopg

        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(autocommit=True, **self.params)
            self.conn.execute("SELECT pg_notify(%s, %s)", (self.channel, token))
        except Exception:
            log.warning("NOTIFY %s failed; other processes fall back to polling", self.channel, exc_info=True)
            self.conn = None
            time.sleep(1)


async def relay_wakeups(stop: asyncio.Event, channels: Mapping[str, Signal]) -> None:
    """Turn every other process's wake-up on each of ``channels`` (Redis or NOTIFY) into its signal's ``notify()``.

    One LISTEN connection and one Redis subscription carry every channel a
    process listens on, however many queues it works.
    """
    from django.conf import settings

    listeners = [_relay_postgres(stop, channels)]
    if getattr(settings, "REDIS_URL", ""):
        listeners.append(_relay_redis(stop, channels, settings.REDIS_URL))
    await asyncio.gather(*listeners)


def _notify_all(channels: Mapping[str, Signal]) -> None:
    for signal in set(channels.values()):
        signal.notify()


async def _relay_redis(stop: asyncio.Event, channels: Mapping[str, Signal], url: str) -> None:
    import redis.asyncio as aioredis

    by_name = {_redis_channel(c).encode(): signal for c, signal in channels.items()}
    own = origin().encode()
    failing = False
    while not stop.is_set():
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            pubsub = client.pubsub()
            await pubsub.subscribe(*by_name)
            _notify_all(channels)  # whatever was committed while we were not listening: look now
            if failing:
                log.info("listening for wake-ups on Redis again")
            failing = False
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message["data"] != own:
                    signal = by_name.get(message["channel"])
                    if signal is not None:
                        signal.notify()
        except Exception:
            if not failing:
                log.warning("lost Redis wake-ups; PostgreSQL NOTIFY and polling cover them", exc_info=True)
            failing = True
            await wait_either(stop, asyncio.Event(), 2.0)
        finally:
            try:
                await client.aclose()
            except Exception:
                pass


async def _relay_postgres(stop: asyncio.Event, channels: Mapping[str, Signal]) -> None:
    """LISTEN on ``channels`` and turn each NOTIFY from any process into its signal's ``notify()``."""
    params = postgres_params()
    if params is None:
        return
    import psycopg

    own = origin()
    while not stop.is_set():
        try:
            aconn = await psycopg.AsyncConnection.connect(autocommit=True, **params)
            async with aconn:
                for channel in channels:
                    await aconn.execute(f"LISTEN {channel}")
                # Whatever was committed while we were not listening: look now.
                _notify_all(channels)
                while not stop.is_set():
                    # The generator ends after the timeout, so stop is checked each second.
                    async for notice in aconn.notifies(timeout=1.0):
                        if notice.payload == own:
                            continue
                        signal = channels.get(notice.channel)
                        if signal is not None:
                            signal.notify()
        except Exception:
            log.warning("LISTEN %s lost; waiters fall back to polling", ", ".join(channels), exc_info=True)
            await wait_either(stop, asyncio.Event(), 2.0)


#: Appends are announced to other processes on the log's NOTIFY channel.
_appends = CrossProcessNotifier(APPENDS_CHANNEL)


def announce_append(alias: str) -> None:
    """Wake this process's consumer groups, and other processes' (after an append commits)."""
    appended.notify()
    _appends.request(alias)


_advances: dict[str, tuple[Signal, CrossProcessNotifier]] = {}
_advances_lock = threading.Lock()


def advance_channel(group: str) -> str:
    """The NOTIFY (and Redis) channel that says ``group``'s checkpoint moved."""
    return "parley_advanced_" + "".join(c if c.isalnum() else "_" for c in group)


def _advance(group: str) -> tuple[Signal, CrossProcessNotifier]:
    with _advances_lock:
        found = _advances.get(group)
        if found is None:
            found = _advances[group] = (Signal(), CrossProcessNotifier(advance_channel(group)))
        return found


def advanced(group: str) -> Signal:
    """Rung in this process when ``group``'s checkpoint moved (here, or relayed from another process)."""
    return _advance(group)[0]


def announce_advance(group: str, *, elsewhere: bool = True) -> None:
    """Wake the groups that follow ``group`` here, and unless ``elsewhere`` is
    false in other processes too (after its batch committed)."""
    signal, notifier = _advance(group)
    signal.notify()
    if elsewhere:
        notifier.request()
