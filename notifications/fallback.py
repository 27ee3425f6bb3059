"""The email fallback process manager: one timer per unread streak.

A customer with no push subscription who has closed the tab learns of an
answer by email. A consumer of the log in a consumer group of its own
(``EMAIL_FALLBACK``, composed in project/bootstrap.py); it keeps its own
count of the agent messages each customer has not read (``EmailUnread``),
in log order, and:

* on an agent's message that starts an **unread streak** (the customer had
  nothing unread), schedules the timer ``email-fallback:<customer>:<message>``
  due ``PARLEY_EMAIL_FALLBACK_SECONDS`` after the message was sent; later
  messages of the streak schedule nothing;
* on the customer's read that leaves nothing unread (badge 0), cancels it:
  the streak ended in time, and the next agent message starts a new one.

All of it is written in the group's transaction with its checkpoint, so a
batch redone after a crash schedules nothing twice (the key is unique).
When the timer fires, notifications.fallback_email reads the current unread
messages and queues the one email of the streak.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings

from chat.events import MessageMarkedAsRead, MessageSent, SenderKind
from eventstore.reading import Batch
from notifications.models import EmailUnread
from workers import timers

log = logging.getLogger(__name__)

#: The consumer group (and checkpoint) of the email fallback process manager.
EMAIL_FALLBACK = "email-fallback"
EMAIL_FALLBACK_TIMER = "email.fallback_due"
#: A streak whose email would have been due longer ago than this when the
#: process manager first sees it (a new deployment reading old history, a
#: long outage of every worker) sends nothing: old news by email is noise.
STALE_AFTER = dt.timedelta(days=1)


def fallback_delay() -> dt.timedelta | None:
    """PARLEY_EMAIL_FALLBACK_SECONDS as a delay; None: the fallback is off."""
    seconds = float(getattr(settings, "PARLEY_EMAIL_FALLBACK_SECONDS", 0) or 0)
    return dt.timedelta(seconds=seconds) if seconds > 0 else None


def timer_key(customer_id: object, message_id: object) -> str:
    return f"email-fallback:{customer_id}:{message_id}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _counted(batch: Batch) -> list[MessageSent | MessageMarkedAsRead]:
    """The batch's agent messages (one more unread each) and customer reads (one fewer)."""
    return [
        e for e in (r.event for r in batch.events)
        if (isinstance(e, MessageSent) and e.sender_kind == SenderKind.AGENT)
        or (isinstance(e, MessageMarkedAsRead) and e.reader_kind == SenderKind.CUSTOMER)
    ]


class EmailFallbackProcessManager:
    """Consumer ``email-fallback`` (see the module docstring)."""

    name = EMAIL_FALLBACK
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead"})

    def __init__(self, clock: Callable[[], dt.datetime] = _now) -> None:
        self.clock = clock

    def handle(self, batch: Batch) -> None:
        """Fold the batch into the unread counts of its customers, read in one
        query and written back in at most two statements; a streak's timer is
        scheduled when its count leaves zero and cancelled when it comes back
        to zero, in log order."""
        events = _counted(batch)
        if not events:
            return
        customers = {e.customer_id for e in events}
        unread: dict[Any, set[Any]] = {c: set() for c in customers}
        for message_id, customer_id in EmailUnread.objects.filter(customer_id__in=customers).values_list(
            "message_id", "customer_id"
        ):
            unread[customer_id].add(message_id)
        added: dict[Any, Any] = {}  # message id -> customer id
        removed: set[Any] = set()
        for e in events:
            messages = unread[e.customer_id]
            if isinstance(e, MessageSent):
                if e.message_id in messages:
                    continue  # counted before (a batch redone): never a second streak
                if not messages:
                    self._start_streak(e)
                messages.add(e.message_id)
                added[e.message_id] = e.customer_id
            elif e.message_id in messages:
                messages.discard(e.message_id)
                if added.pop(e.message_id, None) is None:
                    removed.add(e.message_id)
                if not messages:  # the streak ended in time: no email
                    timers.cancel(kind=EMAIL_FALLBACK_TIMER, subject=str(e.customer_id))
        if removed:
            EmailUnread.objects.filter(message_id__in=removed).delete()
        if added:
            EmailUnread.objects.bulk_create([EmailUnread(message_id=m, customer_id=c) for m, c in added.items()])

    def _start_streak(self, e: MessageSent) -> None:
        delay = fallback_delay()
        if delay is None:
            return
        due_at = e.sent_at + delay
        if due_at < self.clock() - STALE_AFTER:
            log.info("email fallback: streak of %s due at %s is too old to email", e.customer_id, due_at)
            return
        timers.schedule(
            key=timer_key(e.customer_id, e.message_id), kind=EMAIL_FALLBACK_TIMER, subject=str(e.customer_id),
            due_at=due_at, payload={"customer_id": str(e.customer_id)},
        )

    def reset(self) -> None:
        """Its state is decisions already acted on, not a view: a rebuild does not redo them."""

    async def after_commit(self, effects: Any) -> None:
        return None
