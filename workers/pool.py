"""Working a queue in a process: rounds claimed and settled on one database thread, worked on a pool of threads.

Push, webhook and email delivery have the same shape (workers.jobs has
their rows): claim a round of due lanes, do the slow part outside any
transaction (a request to a push service, a receiver, an SMTP server), and
record what came of it. Here a process does that for one queue:

* one **database thread**, which keeps its connection, claims rounds and
  settles their outcomes; a settlement covers every round that finished
  since the last one, so marks are batched however many threads send;
* ``threads`` **work threads**, which hold no database connection: each
  works one round at a time, in order, and hands back what it did not get
  to (the lease's end, a stop);
* **groups** (a webhook endpoint): a round holds lanes of one group, and
  a process works on at most ``per_group`` rounds of one group at once. A
  hung or slow receiver holds at most that many threads; the others keep
  serving every other group.
* **kept threads** (``reserve``): however many groups hang, they never
  hold every thread. The last ``reserve`` free threads go only to a group
  with no round in flight whose last round was not slow (it took less than
  ``slow_after`` seconds); every other round shares the rest. A group that
  hangs takes a kept thread at most once, before it is known to be slow.

A wake-up (rows queued in this process, or in another one through Redis
or NOTIFY) or a finished round makes the loop claim at once; with nothing
to claim it sleeps until the queue's next due row, at most ``poll``
seconds. A round whose work raised is logged and handed back, and the
loop backs off before it claims again.

``run_round`` is the same work in the calling thread, one round at a time
(tests, management commands, benchmarks).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from eventstore.runner import make_owner_id
from observability.logs import mark_reported
from workers import wakeup
from workers.dbthreads import DatabaseThreads
from workers.loop import Delay, run_forever, until

log = logging.getLogger(__name__)


class Work(Protocol):
    """A claimed round as the pool sees it."""

    group: Hashable


R = TypeVar("R", bound=Work)
Out = TypeVar("Out")  # what a round came to


class Job(Protocol[R, Out]):
    """What a kind of job plugs into the pool."""

    #: Set from another thread to make rounds stop between requests.
    stopping: threading.Event

    def now(self) -> dt.datetime: ...

    def claim(self, rounds: int, busy: Mapping[Hashable, int]) -> list[R]:
        """Up to ``rounds`` rounds; ``busy`` counts the rounds of each group being worked (database thread)."""
        ...

    def perform(self, work: R) -> Out:
        """Work one round, outside any transaction (a work thread); the outcome says what to record."""
        ...

    def settle(self, outcomes: list[Out]) -> None:
        """Record outcomes, and hand back what their rounds did not get to (database thread)."""
        ...

    def release(self, work: list[R]) -> None:
        """Hand back rounds that were not worked (database thread)."""
        ...

    def report(self, work: R, error: BaseException) -> None:
        """Log a round whose work raised, with what it was working on."""
        ...

    def next_due(self) -> dt.datetime | None: ...

    def chores(self) -> object:
        """Housekeeping (purge), every ``chores_every`` seconds (database thread)."""
        ...

    def release_all(self) -> None:
        """Hand back anything still leased to this job (database thread, when stopping)."""
        ...

    def close(self) -> None: ...


J = TypeVar("J", bound=Job[Any, Any])


@dataclass(frozen=True)
class Pool(Generic[J]):
    """A queue's workers in one process (see the module docstring)."""

    name: str  # "webhook delivery": thread names and log records
    make: Callable[[str], J]  # the job, given its owner id (called on the database thread)
    signal: wakeup.Signal  # rung in this process when rows are queued
    channel: str  # the same from other processes (NOTIFY / Redis)
    threads: int
    poll: float
    per_group: int | None = None
    chores_every: float = 600.0
    #: Threads kept for groups with no round in flight whose last round was not slow (needs ``per_group``).
    reserve: int = 0
    #: Seconds from which a round counts as slow: its group takes no kept thread until a round of it is quicker.
    slow_after: float = math.inf

    def __post_init__(self) -> None:
        if self.reserve and (self.per_group is None or self.reserve >= self.threads):
            raise ValueError("a pool keeps threads only with a cap per group, and never all of its threads")


def run_round(job: Job[R, Out], *, rounds: int = 1) -> list[Out]:
    """Claim, work and settle in this thread; the outcomes (nothing claimed: empty)."""
    claimed = job.claim(rounds, {})
    outcomes: list[Out] = []
    worked = 0
    try:
        for work in claimed:
            try:
                outcomes.append(job.perform(work))
            except Exception as exc:
                job.report(work, exc)
                raise
            worked += 1
    finally:
        try:
            job.settle(outcomes)
        finally:
            job.release(claimed[worked:])
    return outcomes


async def run_pool(pool: Pool[Any], stop: asyncio.Event, *, relay: bool = True) -> None:
    """Work ``pool``'s queue until ``stop`` is set; ``relay``: also listen for other processes' wake-ups
    (a process working several queues listens once for all of them instead)."""
    loop = asyncio.get_running_loop()
    slug = pool.name.replace(" ", "-")
    db = DatabaseThreads(1, f"{slug}-db")
    workers = ThreadPoolExecutor(max_workers=pool.threads, thread_name_prefix=slug)
    woken = pool.signal.register(loop)
    relaying = (
        asyncio.create_task(wakeup.relay_wakeups(stop, {pool.channel: pool.signal}), name=f"{pool.name} listen")
        if relay else None
    )
    job: Job[Any, Any] | None = None
    running: dict[asyncio.Future[Any], Any] = {}
    started: dict[asyncio.Future[Any], float] = {}
    inflight: Counter[Hashable] = Counter()
    slow: set[Hashable] = set()  # groups whose last round took slow_after or longer
    outcomes: list[Any] = []
    failed: list[tuple[Any, BaseException]] = []

    def finished(future: asyncio.Future[Any]) -> None:
        work = running.pop(future)
        if time.monotonic() - started.pop(future) >= pool.slow_after:
            slow.add(work.group)
        else:
            slow.discard(work.group)
        inflight[work.group] -= 1
        if inflight[work.group] <= 0:
            del inflight[work.group]
        if future.cancelled():
            failed.append((work, asyncio.CancelledError()))
        elif future.exception() is not None:
            failed.append((work, future.exception()))  # type: ignore[arg-type]
        else:
            outcomes.append(future.result())
        woken.set()

    async def record() -> None:
        """Settle what finished, hand back what failed (kept for the next try if the database fails)."""
        assert job is not None
        while failed:
            work, exc = failed[0]
            job.report(work, exc)
            await db(job.release)([work])
            failed.pop(0)
        if outcomes:
            batch = list(outcomes)
            await db(job.settle)(batch)
            del outcomes[: len(batch)]

    def start(work: Any) -> None:
        assert job is not None
        future = loop.run_in_executor(workers, job.perform, work)
        running[future] = work
        started[future] = time.monotonic()
        inflight[work.group] += 1
        future.add_done_callback(finished)

    last_chores = time.monotonic()

    async def step() -> Delay:
        """Record what finished, claim for the free threads; how long to wait for the next step."""
        nonlocal last_chores
        assert job is not None
        had_failures = bool(failed)
        await record()
        if had_failures:
            failure = _RoundFailed(f"{pool.name}: a round's work raised")
            mark_reported(failure)  # the job's report logged it, with what it was working on
            raise failure
        pause: float = pool.poll  # every thread busy: a finished round (or a wake-up) comes first
        free = pool.threads - len(running)
        if free > 0:
            claimed = await db(job.claim)(free - pool.reserve, dict(inflight)) if free > pool.reserve else []
            for work in claimed:
                start(work)
            # The kept threads, once the rest are taken: one round at a time, of a group
            # with nothing in flight that was not slow (the others count as full).
            while len(claimed) < free and len(running) >= pool.threads - pool.reserve:
                assert pool.per_group is not None
                closed = dict.fromkeys({*inflight, *slow}, pool.per_group)
                kept = await db(job.claim)(1, closed)
                if not kept:
                    break
                claimed += kept
                start(kept[0])
            if len(claimed) < free:
                # Nothing more to claim now: sleep until something falls due, a
                # round finishes or a wake-up rings.
                pause = until(await db(job.next_due)(), job.now(), cap=pool.poll)
        if time.monotonic() - last_chores > pool.chores_every:
            last_chores = time.monotonic()
            await db(job.chores)()
        return pause

    try:
        job = await db(pool.make)(f"{make_owner_id()}:{slug}")
        # A step that raises (the database away, a round's work failed) is
        # retried after a backoff that wake-ups do not cut short.
        await run_forever(step, wake=woken, stop=stop, idle=pool.poll, name=pool.name)
    finally:
        pool.signal.unregister(loop, woken)
        if job is not None:
            job.stopping.set()
            if running:
                await asyncio.wait(list(running))
            try:
                await record()
                await db(job.release_all)()
            except Exception:
                log.exception("%s could not record or hand back its last rounds", pool.name)
            job.close()
        workers.shutdown(wait=False)
        if relaying is not None:
            if not stop.is_set():  # we are leaving on an error: the listener goes too
                relaying.cancel()
            await asyncio.gather(relaying, return_exceptions=True)
        await asyncio.to_thread(db.close_connections)
        db.shutdown()


class _RoundFailed(Exception):
    """A round's work raised (logged by the job's ``report``): back off before claiming again."""
