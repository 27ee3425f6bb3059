"""Sends the email outbox (``EmailOutbox``, a queue of workers.jobs) with Django's email framework.

Rows are **claimed** in a short transaction (``SELECT ... FOR UPDATE SKIP
LOCKED``; their ``next_attempt_at`` moves to the end of a lease, so no
other worker takes them, and the attempt is counted), **sent** on a work
thread outside any transaction (an SMTP exchange must not hold a database
lock: on SQLite that would stop every writer), over one SMTP connection for
the round, then **marked** sent with the rest of the round. At least once:
a worker that dies after the SMTP server accepted an email and before the
mark leaves the row to be claimed again when the lease runs out, and the
email is sent a second time, with the same Message-ID (so mail clients
that de-duplicate show it once). That window is a round's SMTP exchanges
plus one commit wide.

A failure is retried with exponential backoff and jitter; after
``MAX_ATTEMPTS`` the row is marked dead with its last error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from django.core.mail import EmailMultiAlternatives, get_connection

from eventstore.runner import make_owner_id
from notifications.models import EmailOutbox
from workers import jobs
from workers.pool import Pool, run_pool, run_round

log = logging.getLogger(__name__)

#: A claimed row is another worker's to take again after this long (a send
#: takes at most EMAIL_TIMEOUT, 10 s by default, and a round is at most
#: STEP_LIMIT of them).
LEASE = dt.timedelta(seconds=120)
MAX_ATTEMPTS = 8
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)
#: Seconds the worker sleeps at most between looks. An email queued in
#: this process wakes the worker when its transaction commits (one queued
#: in another, through Redis or NOTIFY); otherwise it sleeps until the
#: earliest retry is due, and only a lost wake-up is seen up to this late.
IDLE_SECONDS = 30.0
#: Emails claimed (and sent on one connection) per round.
STEP_LIMIT = 50
#: Sent and dead emails are deleted after this long (a timer's key names an
#: email once: its row outlives any chance of the timer firing again).
RETENTION = dt.timedelta(days=30)
PURGE_EVERY_SECONDS = 600.0

#: The email outbox as a queue of workers.jobs (no lanes: emails do not wait for each other).
EMAIL: jobs.Queue[EmailOutbox] = jobs.Queue(
    "email", EmailOutbox, channel="parley_email", due="next_attempt_at", attempt_on_claim=True
)
#: Emails were queued in this process (rung after the commit; ``queue``).
queued = EMAIL.signal


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def queue(key: str, fields: dict[str, object], now: dt.datetime) -> None:
    """Queue one email under ``key`` (in the caller's transaction); a key already queued is left alone."""
    EmailOutbox.objects.get_or_create(key=key, defaults={**fields, "created_at": now, "next_attempt_at": now})
    EMAIL.wake_on_commit()


def as_email(row: EmailOutbox) -> EmailMultiAlternatives:
    """The row as a multipart/alternative email: the plain text, then the HTML."""
    message = EmailMultiAlternatives(row.subject, row.text, to=[row.to], headers=dict(row.headers))
    message.attach_alternative(row.html, "text/html")
    return message


def claim(now: dt.datetime, *, owner: str = "", limit: int = 1) -> list[EmailOutbox]:
    """Lease up to ``limit`` due emails (their attempt counted), oldest first."""
    claimed = EMAIL.claim(now, owner=owner, lease=LEASE.total_seconds(), lanes=limit)
    return [row for r in claimed for row in r.rows()]


@dataclass
class Outcome:
    round: jobs.Round[EmailOutbox]
    done: list[jobs.Done] = field(default_factory=list)
    retry: list[jobs.Retry] = field(default_factory=list)

    def sent(self) -> int:
        return sum(1 for d in self.done if d.state == EmailOutbox.SENT)


class Mailer:
    """Sends due emails (a job of workers.pool); ``clock`` is the time it acts at."""

    def __init__(self, *, owner: str | None = None, clock: Callable[[], dt.datetime] | None = None, limit: int = STEP_LIMIT) -> None:
        self.owner = owner or make_owner_id()
        self.clock = clock or _now
        self.limit = limit
        self.stopping = threading.Event()

    def now(self) -> dt.datetime:
        return self.clock()

    def claim(self, rounds: int, busy: Mapping[Hashable, int]) -> list[jobs.Round[EmailOutbox]]:
        return EMAIL.claim(self.clock(), owner=self.owner, lease=LEASE.total_seconds(), rounds=rounds, lanes=self.limit)

    def perform(self, work: jobs.Round[EmailOutbox]) -> Outcome:
        outcome = Outcome(work)
        connection = None
        try:
            for row in work.rows():
                if self.stopping.is_set():
                    break
                if connection is None:
                    connection = get_connection()
                try:
                    connection.send_messages([as_email(row)])
                except Exception as exc:  # the SMTP server is away or refused: retried later
                    log.warning("email %s not sent (attempt %d): %r", row.key, row.attempts, exc)
                    error = repr(exc)
                    if row.attempts >= MAX_ATTEMPTS:
                        outcome.done.append(jobs.Done(row.key, EmailOutbox.DEAD, error))
                    else:
                        delay = jobs.retry_delay(
                            row.attempts, base=BACKOFF_BASE.total_seconds(), cap=BACKOFF_CAP.total_seconds()
                        )
                        outcome.retry.append(jobs.Retry(row.key, self.clock() + delay, error))
                    connection.close()
                    connection = None
                    continue
                outcome.done.append(jobs.Done(row.key, EmailOutbox.SENT, values=jobs.values(sent_at=self.clock())))
        finally:
            if connection is not None:
                connection.close()
        return outcome

    def settle(self, outcomes: list[Outcome]) -> None:
        left: dict[str, dt.datetime] = {}
        for o in outcomes:
            decided = {d.pk for d in o.done} | {r.pk for r in o.retry}
            left.update({pk: due for pk, due in o.round.due.items() if pk not in decided})
        EMAIL.settle(
            self.clock(), owner=self.owner, done=[d for o in outcomes for d in o.done],
            retry=[r for o in outcomes for r in o.retry], release=left,
        )

    def release(self, work: list[jobs.Round[EmailOutbox]]) -> None:
        due: dict[str, dt.datetime] = {}
        for r in work:
            due.update(r.due)
        EMAIL.release(self.owner, due)

    def report(self, work: jobs.Round[EmailOutbox], error: BaseException) -> None:
        log.error("emails %s failed", [r.key for r in work.rows()], exc_info=error)

    def next_due(self) -> dt.datetime | None:
        return EMAIL.next_due(self.clock())

    def chores(self) -> int:
        return EMAIL.purge(self.clock() - RETENTION)

    def release_all(self) -> None:
        EMAIL.release_owner(self.owner, self.clock())

    def close(self) -> None:
        return None


def send_due(now: dt.datetime | None = None, limit: int = STEP_LIMIT) -> int:
    """Send every email due at ``now`` (default: the clock), at most ``limit``; returns how many were sent."""
    at = now
    mailer = Mailer(clock=(lambda: at) if at is not None else None, limit=limit)
    return sum(o.sent() for o in run_round(mailer))


def next_due() -> dt.datetime | None:
    return EMAIL.next_due(_now())


async def run(stop: asyncio.Event, *, relay: bool = True) -> None:
    """Send due emails until ``stop`` is set (one per process or several: rows are claimed);
    ``relay``: listen for other processes' wake-ups here (project.bootstrap listens once for all queues)."""
    pool = Pool(
        name="email", make=lambda owner: Mailer(owner=owner), signal=queued, channel=EMAIL.channel,
        threads=1, poll=IDLE_SECONDS, chores_every=PURGE_EVERY_SECONDS,
    )
    await run_pool(pool, stop, relay=relay)
