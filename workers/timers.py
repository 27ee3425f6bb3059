"""Durable scheduled commands: "run this command at that time", once.

A general scheduler, used by whatever needs a command later (a snooze that
ends, a first response that falls due). A timer is a row of
``parley_timers``:

* **Scheduled in the transaction that decides it.** A process manager
  writes the row with the batch and checkpoint that made it necessary, so
  a timer exists exactly when the event that asked for it was processed.
  Its ``key`` names the cause and is unique: scheduling again is a no-op.
* **Cancelled by the events that make it moot**, likewise in the consumer's
  transaction (``cancel``). The command a timer fires also checks the
  aggregate's state, so a timer that fires after all changes nothing.
* **Fired once.** ``fire_due`` claims a due row of the queue of timers
  (workers.jobs: ``SELECT ... FOR UPDATE SKIP LOCKED``, so two workers
  never take the same row), runs its handler and marks it fired, in one
  transaction: the row lock is the lease. A crash before the commit leaves
  the row pending and the command's events unwritten, so it fires again,
  once. The handler derives its events' ids from the key, so even a
  command that did commit can never append twice for the same cause.
* **Due while no worker runs**: the row waits; the first worker that looks
  fires it (it fires every due row, however late).
* **Woken on commit**: scheduling wakes this process's timer worker when
  the transaction commits, and other processes' through Redis or NOTIFY;
  otherwise the worker sleeps until the earliest due timer.

Handlers are registered per kind by the composition root (``register``).
A handler that raises leaves its timer pending and is retried later, with
exponential backoff and jitter (a command is never given up: its
``last_error`` says why it waits); a refusal (a ``DomainError``) marks it
done: the command is moot. Timers finished a month ago are purged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from kernel.errors import DomainError
from workers import jobs, wakeup
from workers.dbthreads import DatabaseThreads
from workers.loop import Delay, run_forever, until
from workers.models import Timer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    """A timer as its handler sees it."""

    key: str
    kind: str
    subject: str
    due_at: dt.datetime
    payload: dict[str, Any]


Handler = Callable[[Due, dt.datetime], None]
_handlers: dict[str, Handler] = {}

#: Seconds a worker sleeps at most between looks. A timer scheduled in
#: any process wakes the timer workers when the scheduling transaction
#: commits, and a worker otherwise sleeps until the earliest due timer; only
#: a lost wake-up is seen up to this late.
IDLE_SECONDS = 30.0
#: Timers fired per step before the worker looks again at once.
STEP_LIMIT = 100
#: A failing handler is retried after about this long (half of it random),
#: doubling with each failure up to RETRY_CAP.
RETRY_AFTER = dt.timedelta(seconds=30)
RETRY_CAP = dt.timedelta(minutes=10)
#: Fired and cancelled timers are deleted after this long (long after any
#: batch that scheduled them could be redone).
RETENTION = dt.timedelta(days=30)
PURGE_EVERY_SECONDS = 600.0

#: The timers as a queue of workers.jobs: no lanes, and no lease but the
#: claim's row lock (the handler runs in the claim's transaction).
TIMERS: jobs.Queue[Timer] = jobs.Queue("timers", Timer, channel="parley_timers", finished="done_at", owner=None)
#: Timers were scheduled in this process (rung after the commit).
scheduled = TIMERS.signal


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def register(kind: str, handler: Handler) -> None:
    _handlers[kind] = handler


def schedule(*, key: str, kind: str, subject: str, due_at: dt.datetime, payload: dict[str, Any] | None = None) -> None:
    """Schedule ``kind`` at ``due_at`` unless a timer with this key exists (in the caller's transaction)."""
    if due_at.tzinfo is None:
        raise ValueError("naive datetimes are not allowed in timers")
    Timer.objects.bulk_create(
        [Timer(key=key, kind=kind, subject=subject, due_at=due_at, payload=payload or {}, created_at=_now())],
        ignore_conflicts=True,
    )
    TIMERS.wake_on_commit()


def cancel(*, kind: str, subject: str, keep: str | None = None) -> int:
    """Cancel the pending timers of ``kind`` for ``subject`` (but ``keep``); returns how many."""
    pending = Timer.objects.filter(kind=kind, subject=subject, state=Timer.PENDING)
    if keep is not None:
        pending = pending.exclude(key=keep)
    return pending.update(state=Timer.CANCELLED, done_at=_now())


def cancel_subject(subject: str) -> int:
    """Cancel every pending timer of ``subject``, whatever its kind (an erased customer's)."""
    return Timer.objects.filter(subject=subject, state=Timer.PENDING).update(state=Timer.CANCELLED, done_at=_now())


def cancel_keys(keys: Collection[str]) -> int:
    """Cancel the pending timers named by ``keys`` (in the caller's transaction), in one statement."""
    if not keys:
        return 0
    return Timer.objects.filter(key__in=list(keys), state=Timer.PENDING).update(state=Timer.CANCELLED, done_at=_now())


def pending(subject: str | None = None) -> list[Timer]:
    qs = Timer.objects.filter(state=Timer.PENDING)
    if subject is not None:
        qs = qs.filter(subject=subject)
    return list(qs.order_by("due_at", "key"))


def fire_due(now: dt.datetime | None = None, limit: int = 100) -> int:
    """Fire every timer due at ``now`` (default: the clock), each in its own transaction; returns how many fired."""
    fired = 0
    for _ in range(limit):
        outcome = _fire_one(now or _now())
        if outcome is None:
            break
        fired += outcome
    return fired


def _fire_one(now: dt.datetime) -> int | None:
    """Claim and fire one due timer: 1 fired, 0 failed (retried later), None: none due."""
    claimed: Timer | None = None
    try:
        with transaction.atomic():
            rounds = TIMERS.claim(now, owner=None, lease=None)
            if not rounds:
                return None
            timer = claimed = rounds[0].rows()[0]
            handler = _handlers.get(timer.kind)
            if handler is None:
                raise LookupError(f"no handler for timers of kind {timer.kind!r}")
            due = Due(timer.key, timer.kind, timer.subject, timer.due_at, dict(timer.payload))
            error = ""
            try:
                with transaction.atomic():
                    handler(due, now)
            except DomainError as refused:  # the command is moot: done, not retried
                error = f"refused: {refused.code}"
            TIMERS.settle(now, done=[jobs.Done(timer.key, Timer.FIRED, error)])
            return 1
    except Exception as exc:
        if claimed is None:
            raise  # no timer to blame: the database itself failed
        delay = jobs.retry_delay(claimed.attempts + 1, base=RETRY_AFTER.total_seconds(), cap=RETRY_CAP.total_seconds())
        log.exception("timer %s failed; retried in %.0fs", claimed.key, delay.total_seconds())
        # Pushed back, so the timers due after it are not held up behind it.
        TIMERS.settle(now, retry=[jobs.Retry(claimed.key, now + delay, repr(exc))])
        return 0


def next_due() -> dt.datetime | None:
    return TIMERS.next_due(_now())


_last_purge = time.monotonic()


def step(now: dt.datetime | None = None) -> Delay:
    """Fire what is due; then how long the worker may sleep (0: more is due now)."""
    global _last_purge
    if fire_due(now, limit=STEP_LIMIT) >= STEP_LIMIT:
        return 0
    if time.monotonic() - _last_purge > PURGE_EVERY_SECONDS:
        _last_purge = time.monotonic()
        TIMERS.purge(_now() - RETENTION)
    return until(next_due(), now or _now(), cap=IDLE_SECONDS, floor=0.1)


async def run(stop: asyncio.Event, *, relay: bool = True) -> None:
    """Fire due timers until ``stop`` is set (one per process or several: rows are claimed with SKIP LOCKED),
    on a thread that keeps its database connection; ``relay``: listen for other processes' wake-ups here
    (project.bootstrap listens once for all queues)."""
    thread = DatabaseThreads(1, "timers")
    loop = asyncio.get_running_loop()
    woken = scheduled.register(loop)
    tasks = [asyncio.create_task(wakeup.relay_wakeups(stop, {TIMERS.channel: scheduled}))] if relay else []
    try:
        await run_forever(thread(step), wake=woken, stop=stop, idle=IDLE_SECONDS, name="timer worker")
    finally:
        scheduled.unregister(loop, woken)
        await asyncio.gather(*tasks)
        await asyncio.to_thread(thread.close_connections)
        thread.shutdown()
