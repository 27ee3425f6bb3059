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

from notifications.models import EmailOutbox

log = logging.getLogger(__name__)

#: A claimed row is another worker's to take again after this long (a send
#: takes at most EMAIL_TIMEOUT, 10 s by default).
LEASE = dt.timedelta(seconds=120)
MAX_ATTEMPTS = 8
BACKOFF_BASE = dt.timedelta(seconds=30)
#: Seconds the worker sleeps at most between looks.
POLL_SECONDS = 1.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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


def send_due(now: dt.datetime | None = None, limit: int = 50) -> int:
    """Send every email due at ``now`` (default: the clock), at most ``limit``; returns how many were sent."""
    sent = 0
    connection = None
    try:
        for _ in range(limit):
            at = now or _now()
            row = _claim(at)
            if row is None:
                break
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
    return sent


async def run(stop: asyncio.Event) -> None:
    """Send due emails until ``stop`` is set (one per process or several: rows are claimed)."""
    from asgiref.sync import sync_to_async

    def send_and_release() -> int:
        try:
            return send_due()
        finally:
            db.connection.close()  # a pool thread of its own: give its connection back

    # Not thread-sensitive: an SMTP exchange must not hold up the thread
    # that serves every other thread-sensitive call of this process.
    send = sync_to_async(send_and_release, thread_sensitive=False)
    while not stop.is_set():
        try:
            await send()
        except Exception:  # the database is away: try again soon
            log.exception("email worker: cannot send emails now")
        try:
            await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)
        except TimeoutError:
            pass
