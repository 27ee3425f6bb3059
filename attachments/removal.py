"""Stored files are deleted for sure once the rows that named them are gone.

Files live outside the database, so their deletion cannot be in the
transaction that deletes their rows. ``delete_after_commit`` writes a timer
of the durable scheduler (workers.timers) in that transaction and tries at
once after the commit; the timer deletes the files again a minute later,
and a storage that is away (a failing delete raises there) makes it retry
with backoff until the files are gone. Deleting a file that is gone already is
no error, so the two attempts never conflict. The rows' deletion and the
promise to delete the files commit together: an erased customer's files
cannot outlive a failed delete, or a crash after the commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.db import transaction

from attachments import storage
from workers import timers

KIND = "attachment.delete_files"
#: Files one timer deletes at most (its payload names them).
PER_TIMER = 200
#: The timer fires this long after the rows' deletion, once the attempt right after the commit has been made.
RECHECK_AFTER = dt.timedelta(minutes=1)


def delete_after_commit(names: Iterable[str], *, now: dt.datetime | None = None) -> None:
    """Delete these stored files once the caller's transaction commits, retried until they are gone."""
    names = [name for name in names if name]
    due_at = (now or dt.datetime.now(dt.timezone.utc)) + RECHECK_AFTER
    for i in range(0, len(names), PER_TIMER):
        timers.schedule(key=f"{KIND}:{uuid.uuid4()}", kind=KIND, subject=KIND, due_at=due_at,
                        payload={"names": names[i:i + PER_TIMER]})
    if names:
        transaction.on_commit(lambda: storage.delete(names))


def delete_files(due: timers.Due, now: dt.datetime) -> None:
    """The timer's handler: a file that cannot be deleted raises, and the timer is retried."""
    storage.delete(due.payload["names"], strict=True)


def register() -> None:
    timers.register(KIND, delete_files)
