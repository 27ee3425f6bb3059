"""Unsent attachments are deleted 24 hours after their upload, by the durable scheduler.

The upload schedules a timer (workers.timers) in the transaction that
stores its row, keyed by the attachment, so every unsent upload has exactly
one. A send cancels it; the handler also re-checks, under a row lock, that
the attachment is still unsent, so a timer that fires after a send (or
twice) deletes nothing. The files go after the row's deletion commits,
retried until they are gone (attachments.removal): never a row without its file.
"""

from __future__ import annotations

import datetime as dt
import uuid

from attachments import removal
from attachments.models import Attachment
from workers import timers

KIND = "attachment.expire"
#: How long an upload waits to be sent.
UNSENT_LIFETIME = dt.timedelta(hours=24)


def subject(attachment_id: uuid.UUID) -> str:
    return f"attachment-{attachment_id}"


def schedule(row: Attachment) -> None:
    """Schedule the deletion of ``row`` if it is still unsent a day after its upload (caller's transaction)."""
    timers.schedule(key=f"{KIND}:{row.id}", kind=KIND, subject=subject(row.id),
                    due_at=row.uploaded_at + UNSENT_LIFETIME, payload={"attachment_id": str(row.id)})


def cancel(attachment_ids: list[uuid.UUID]) -> None:
    """The attachments were sent: their deletion is moot (caller's transaction)."""
    for attachment_id in attachment_ids:
        timers.cancel(kind=KIND, subject=subject(attachment_id))


def expire(due: timers.Due, now: dt.datetime) -> None:
    row = (Attachment.objects.select_for_update()
           .filter(id=uuid.UUID(due.payload["attachment_id"]), message_id__isnull=True).first())
    if row is None:
        return  # sent (or already gone): nothing to do
    row.delete()
    removal.delete_after_commit([row.blob, row.thumbnail], now=now)


def register() -> None:
    timers.register(KIND, expire)
