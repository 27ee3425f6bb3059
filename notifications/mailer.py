"""Sends the email outbox (``EmailOutbox``) with Django's email framework.

A row is **claimed** in a short transaction (``SELECT ... FOR UPDATE SKIP
LOCKED``; its ``next_attempt_at`` moves a lease ahead, so no other worker
takes it), **sent** outside any transaction (an SMTP exchange must not hold
a database lock: on SQLite that would stop every writer), then **marked**
sent. At least once: a worker that dies after the SMTP server accepted the
email and before the mark leaves the row to be claimed again when the lease
runs out, and the email is sent a second time, with the same Message-ID
(so mail clients that de-duplicate show it once). That window is one
SMTP exchange plus one commit wide.

A failure is retried with exponential backoff; after ``MAX_ATTEMPTS`` the
row is marked dead with its last error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from django import db
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Min

from notifications.models import EmailOutbox
from workers import wakeup
from workers.loop import Delay, until

log = logging.getLogger(__name__)

#: A claimed row is another worker's to take again after this long (a send
#: takes at most EMAIL_TIMEOUT, 10 s by default).
LEASE = dt.timedelta(seconds=120)
MAX_ATTEMPTS = 8
BACKOFF_BASE = dt.timedelta(seconds=30)
#: Seconds the worker sleeps at most between looks. An email queued in
#: this process wakes the worker when its transaction commits; otherwise
#: it sleeps until the earliest retry is due, and only an email queued by
#: another process is seen up to this late.
IDLE_SECONDS = 30.0
#: Emails sent per step before the worker looks again at once.
STEP_LIMIT = 50

#: Emails were queued in this process (rung after the commit; ``queue``).
queued = wakeup.Signal()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def queue(key: str, fields: dict[str, object], now: dt.datetime) -> None:
    """Queue one email under ``key`` (in the caller's transaction); a key already queued is left alone."""
    EmailOutbox.objects.get_or_create(key=key, defaults={**fields, "created_at": now, "next_attempt_at": now})
    transaction.on_commit(queued.notify)


def as_email(row: EmailOutbox) -> EmailMultiAlternatives:
    """The row as a multipart/alternative email: the plain text, then the HTML."""
    message = EmailMultiAlternatives(row.subject, row.text, to=[row.to], headers=dict(row.headers))
    message.attach_alternative(row.html, "text/html")
    return message


def _claim(now: dt.datetime) -> EmailOutbox | None:
    with transaction.atomic():
        row = (
            EmailOutbox.objects.select_for_update(skip_locked=True)
            .filter(state=EmailOutbox.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "key")
            .first()
        )
        if row is not None:
            row.next_attempt_at, row.attempts = now + LEASE, row.attempts + 1
            row.save(update_fields=["next_attempt_at", "attempts"])
        return row


def _finish(row: EmailOutbox, now: dt.datetime, error: Exception | None) -> None:
    if error is None:
        row.state, row.sent_at, row.last_error = EmailOutbox.SENT, now, ""
    else:
        row.last_error = repr(error)[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            row.state = EmailOutbox.DEAD
        else:
            row.next_attempt_at = now + BACKOFF_BASE * 2 ** (row.attempts - 1)
    row.save(update_fields=["state", "sent_at", "last_error", "next_attempt_at"])


def send_due(now: dt.datetime | None = None, limit: int = STEP_LIMIT) -> int:
    """Send every email due at ``now`` (default: the clock), at most ``limit``; returns how many were sent."""
    return _send_due(now, limit)[0]


def _send_due(now: dt.datetime | None, limit: int) -> tuple[int, int]:
    """(sent, claimed): claimed reaches ``limit`` when more may be due."""
    sent = claimed = 0
    connection = None
    try:
        for _ in range(limit):
            at = now or _now()
            row = _claim(at)
            if row is None:
                break
            claimed += 1
            if connection is None:
                connection = get_connection()
            try:
                connection.send_messages([as_email(row)])
            except Exception as exc:  # the SMTP server is away or refused: retried later
                log.warning("email %s not sent (attempt %d): %r", row.key, row.attempts, exc)
                _finish(row, now or _now(), exc)
                connection.close()
                connection = None
                continue
            _finish(row, now or _now(), None)
            sent += 1
    finally:
        if connection is not None:
            connection.close()
    return sent, claimed


def next_due() -> dt.datetime | None:
    return EmailOutbox.objects.filter(state=EmailOutbox.PENDING).aggregate(at=Min("next_attempt_at"))["at"]


def step() -> Delay:
    """Send what is due; then how long the worker may sleep (0: more is due now)."""
    if _send_due(None, STEP_LIMIT)[1] >= STEP_LIMIT:
        return 0
    return until(next_due(), _now(), cap=IDLE_SECONDS, floor=0.1)


async def run(stop: asyncio.Event) -> None:
    """Send due emails until ``stop`` is set (one per process or several: rows are claimed)."""
    from asgiref.sync import sync_to_async

    def step_and_release() -> Delay:
        try:
            return step()
        finally:
            db.connection.close()  # a pool thread of its own: give its connection back

    # Not thread-sensitive: an SMTP exchange must not hold up the thread
    # that serves every other thread-sensitive call of this process.
    send = sync_to_async(step_and_release, thread_sensitive=False)
    await wakeup.run_woken_by(queued, send, stop=stop, idle=IDLE_SECONDS, name="email worker")
