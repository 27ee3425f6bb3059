"""The email fallback process manager: one timer per unread streak.

A customer with no push subscription who has closed the tab learns of an
answer by email. A consumer of the log in a consumer group of its own
(``EMAIL_FALLBACK``, composed in project/bootstrap.py) that follows the
read models: for each event it takes the customer's badge as of that event
(readmodels.asof), never a count of its own, and:

* on an agent's message that raises the badge while no **unread streak**
  is running, starts one (an ``EmailStreak`` row) and schedules the timer
  ``email-fallback:<customer>:<message>`` due ``PARLEY_EMAIL_FALLBACK_SECONDS``
  after the message was sent; later messages of the streak schedule nothing;
* on the customer's read that brings the badge back to 0, ends the streak
  and cancels its timer: the next agent message starts a new one.

Parley's own messages (the away reply outside business hours) raise the
badge but start no streak: the email is for what the team wrote, and an
automatic reply must not use up the streak's one email before an agent
answers. So "the badge went from 0 to 1" is not the start of a streak; the
process manager keeps the streaks it started (its own state, one row per
customer, ids only).

All of it is written in the group's transaction with its checkpoint, so a
batch redone after a crash schedules nothing twice (the key is unique).
When the timer fires, notifications.fallback_email reads the current unread
messages and queues the one email of the streak.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings

from chat.events import MessageSent, SenderKind
from customers.events import CustomerRegistered
from eventstore.reading import Batch
from notifications import verification
from notifications.models import EmailOutbox, EmailStreak
from readmodels import asof
from readmodels.asof import forgotten
from readmodels.folds import UNTRUSTED_ADDRESS_ACTORS, moves_badge
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


class EmailFallbackProcessManager:
    """Consumer ``email-fallback`` (see the module docstring)."""

    name = EMAIL_FALLBACK
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead", "CustomerRegistered", "CustomerErased"})

    def __init__(self, clock: Callable[[], dt.datetime] = _now) -> None:
        self.clock = clock

    def prepare(self, batch: Batch) -> None:
        relevant = [r for r in batch.events if moves_badge(r)]
        if relevant:
            assert batch.unit is not None
            asof.for_events(batch.unit, relevant)

    def handle(self, batch: Batch) -> None:
        """Start a streak's timer when an agent's message raises the badge from
        0, cancel it when a read brings the badge back to 0, in log order;
        queue the confirmation email of an address a visitor typed; forget an erased customer."""
        for r in batch.events:
            if r.event_type == "CustomerErased":
                self._forget(r.event.customer_id)  # type: ignore[attr-defined]
                continue
            if isinstance(r.event, CustomerRegistered) and r.metadata.actor in UNTRUSTED_ADDRESS_ACTORS:
                self._confirm_address(r.event, r.recorded_at)
        relevant = [r for r in batch.events if moves_badge(r)]
        if not relevant:
            return
        assert batch.unit is not None
        rows_of = asof.in_unit(batch.unit)
        customers = {r.event.customer_id for r in relevant}  # type: ignore[attr-defined]
        streaks = set(EmailStreak.objects.filter(customer_id__in=customers).values_list("customer_id", flat=True))
        ended: set[uuid.UUID] = set()  # streaks whose rows go, in one statement after the batch
        for r in relevant:
            rows = rows_of(r)
            if rows is None and forgotten(r):
                continue  # erased meanwhile: no email about them
            if rows is None or "badge" not in rows:
                raise LookupError(f"no read-model rows as of event {r.event_id} at position {r.position}")
            badge = rows["badge"]
            if not badge["moved"]:
                continue  # the count did not change
            e = r.event
            if isinstance(e, MessageSent):
                if e.sender_kind != SenderKind.SYSTEM and e.customer_id not in streaks:
                    if e.customer_id in ended:  # ended earlier in this batch: its row goes before the new one
                        EmailStreak.objects.filter(customer_id=e.customer_id).delete()
                        ended.discard(e.customer_id)
                    if self._start_streak(e):
                        streaks.add(e.customer_id)
            elif badge["unread"] == 0:  # the streak ended in time: no email (in order: a new one may follow)
                customer_id = e.customer_id  # type: ignore[attr-defined]
                timers.cancel(kind=EMAIL_FALLBACK_TIMER, subject=str(customer_id))
                if customer_id in streaks:
                    ended.add(customer_id)
                    streaks.discard(customer_id)
        if ended:
            EmailStreak.objects.filter(customer_id__in=ended).delete()

    def _confirm_address(self, e: CustomerRegistered, at: dt.datetime) -> None:
        """No conversation email goes to an address a visitor typed until the visitor proves it:
        this queues the one confirmation email (with the group's checkpoint; keyed, so once)."""
        if not e.email.strip() or fallback_delay() is None:
            return
        if at < self.clock() - STALE_AFTER:
            return  # old history: nobody is waiting for this confirmation now
        verification.queue_confirmation(e.customer_id, e.email.strip(), self.clock())

    @staticmethod
    def _forget(customer_id: uuid.UUID) -> None:
        """An erased customer's streak timer and queued emails go (no email names them again)."""
        timers.cancel(kind=EMAIL_FALLBACK_TIMER, subject=str(customer_id))
        EmailOutbox.objects.filter(customer_id=customer_id).delete()
        EmailStreak.objects.filter(customer_id=customer_id).delete()

    def _start_streak(self, e: MessageSent) -> bool:
        """Start the streak ``e`` opens (its row and timer); False if the fallback is off or ``e`` is old news."""
        delay = fallback_delay()
        if delay is None:
            return False
        due_at = e.sent_at + delay
        if due_at < self.clock() - STALE_AFTER:
            log.info("email fallback: streak of %s due at %s is too old to email", e.customer_id, due_at)
            return False
        EmailStreak.objects.create(customer_id=e.customer_id, message_id=e.message_id, started_at=e.sent_at)
        timers.schedule(
            key=timer_key(e.customer_id, e.message_id), kind=EMAIL_FALLBACK_TIMER, subject=str(e.customer_id),
            due_at=due_at, payload={"customer_id": str(e.customer_id)},
        )
        return True

    def reset(self) -> None:
        """Its state is decisions already acted on, not a view: a rebuild does not redo them."""

    async def after_commit(self, effects: Any) -> None:
        return None
