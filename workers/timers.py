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
* **Fired once.** ``fire_due`` claims a due row with ``SELECT ... FOR
  UPDATE SKIP LOCKED`` (two workers never take the same row), runs its
  handler and marks it fired, in one transaction: a crash before the commit
  leaves the row pending and the command's events unwritten, so it fires
  again, once. The handler derives its events' ids from the key, so even a
  command that did commit can never append twice for the same cause.
* **Due while no worker runs**: the row waits; the first worker that looks
  fires it (it fires every due row, however late).

Handlers are registered per kind by the composition root (``register``).
A handler that raises leaves its timer pending and is retried later; a
refusal (a ``DomainError``) marks it done: the command is moot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Min

from kernel.errors import DomainError
from workers import wakeup
from workers.loop import Delay, until
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
#: this process wakes its worker when the scheduling transaction commits,
#: and the worker otherwise sleeps until the earliest due timer; only a
#: timer scheduled by another process (for a time sooner than any this one
#: knows) is seen up to this late.
IDLE_SECONDS = 30.0
#: Timers fired per step before the worker looks again at once.
STEP_LIMIT = 100

#: Timers were scheduled in this process (rung after the commit).
scheduled = wakeup.Signal()
#: A failing handler is retried after this long.
RETRY_AFTER = dt.timedelta(seconds=30)


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
    transaction.on_commit(scheduled.notify)


def cancel(*, kind: str, subject: str, keep: str | None = None) -> int:
    """Cancel the pending timers of ``kind`` for ``subject`` (but ``keep``); returns how many."""
    pending = Timer.objects.filter(kind=kind, subject=subject, state=Timer.PENDING)
    if keep is not None:
        pending = pending.exclude(key=keep)
    return pending.update(state=Timer.CANCELLED, done_at=_now())


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
    try:
        with transaction.atomic():
            timer = (
                Timer.objects.select_for_update(skip_locked=True)
                .filter(state=Timer.PENDING, due_at__lte=now)
                .order_by("due_at", "key")
                .first()
            )
            if timer is None:
                return None
            handler = _handlers.get(timer.kind)
            if handler is None:
                raise LookupError(f"no handler for timers of kind {timer.kind!r}")
            due = Due(timer.key, timer.kind, timer.subject, timer.due_at, dict(timer.payload))
            try:
                with transaction.atomic():
                    handler(due, now)
                    timer.last_error = ""
            except DomainError as refused:  # the command is moot: done, not retried
                timer.last_error = f"refused: {refused.code}"
            timer.state, timer.done_at, timer.attempts = Timer.FIRED, now, timer.attempts + 1
            timer.save(update_fields=["state", "done_at", "attempts", "last_error"])
            return 1
    except Exception as exc:
        log.exception("timer failed; retried in %s", RETRY_AFTER)
        _postpone(now, repr(exc))
        return 0


def _postpone(now: dt.datetime, error: str) -> None:
    """Push back the earliest due timer that just failed, so the others are not held up behind it."""
    with transaction.atomic():
        timer = (
            Timer.objects.select_for_update(skip_locked=True)
            .filter(state=Timer.PENDING, due_at__lte=now).order_by("due_at", "key").first()
        )
        if timer is not None:
            timer.due_at, timer.attempts, timer.last_error = now + RETRY_AFTER, timer.attempts + 1, error[:2000]
            timer.save(update_fields=["due_at", "attempts", "last_error"])


def next_due() -> dt.datetime | None:
    return Timer.objects.filter(state=Timer.PENDING).aggregate(at=Min("due_at"))["at"]


def step(now: dt.datetime | None = None) -> Delay:
    """Fire what is due; then how long the worker may sleep (0: more is due now)."""
    if fire_due(now, limit=STEP_LIMIT) >= STEP_LIMIT:
        return 0
    return until(next_due(), now or _now(), cap=IDLE_SECONDS, floor=0.1)


async def run(stop: asyncio.Event) -> None:
    """Fire due timers until ``stop`` is set (one per process or several: rows are claimed with SKIP LOCKED)."""
    from asgiref.sync import sync_to_async

    fire = sync_to_async(step, thread_sensitive=True)
    await wakeup.run_woken_by(scheduled, fire, stop=stop, idle=IDLE_SECONDS, name="timer worker")
