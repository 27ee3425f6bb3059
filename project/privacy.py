"""Erasing a customer across contexts, and erasing those inactive past the retention period.

An erasure is the customers context's (the key destroyed, the contact record
deleted, CustomerErased published, which every read model and process
manager follows) plus the attachments context's (the files deleted). The API
and the retention timer both erase through ``erase_customer``.

Retention (``PARLEY_RETENTION_DAYS``, off at 0): a timer of the durable
scheduler (workers.timers) fires every hour, erases the customers whose
conversation has had no activity for that many days (a bounded number per
run; the next run comes at once while more remain), and schedules the next
run. ``python manage.py erase_inactive --dry-run`` lists who would go.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings

from attachments.services import attachments_erase
from chat.ports import customer_directory
from customers.services import customer_erase
from readmodels.models import Conversation
from workers import timers

log = logging.getLogger(__name__)

RETENTION_TIMER = "privacy.retention"
#: Customers one run erases at most (each is one transaction's work; the next run follows at once).
PER_RUN = 200
EVERY = dt.timedelta(hours=1)


def erase_customer(customer_id: uuid.UUID, *, reason: str, actor: str) -> bool:
    """Erase the customer everywhere; False if they were erased already (the files are looked for again)."""
    erased = customer_erase(customer_id=customer_id, reason=reason, actor=actor)
    customer_directory().forget(customer_id)
    attachments_erase(customer_id=customer_id)
    return erased


def retention_days() -> float:
    return float(getattr(settings, "PARLEY_RETENTION_DAYS", 0) or 0)


@dataclass(frozen=True)
class Inactive:
    customer_id: uuid.UUID
    last_activity_at: dt.datetime


def inactive(now: dt.datetime, *, days: float | None = None, limit: int | None = None) -> list[Inactive]:
    """The customers whose conversation has had no activity for ``days`` (default PARLEY_RETENTION_DAYS), oldest first."""
    days = retention_days() if days is None else days
    if days <= 0:
        return []
    rows = (Conversation.objects.filter(last_activity_at__lt=now - dt.timedelta(days=days))
            .order_by("last_activity_at").values_list("customer_id", "last_activity_at"))
    if limit is not None:
        rows = rows[:limit]
    return [Inactive(cid, at) for cid, at in rows]


def _key(at: dt.datetime) -> str:
    return f"{RETENTION_TIMER}:{at.astimezone(dt.timezone.utc).isoformat()}"


def schedule_retention(now: dt.datetime, *, soon: bool = False) -> None:
    """Schedule the next run (the next whole hour; ``soon``: now), unless retention is off or it is scheduled."""
    if retention_days() <= 0:
        return
    at = now if soon else now.replace(minute=0, second=0, microsecond=0) + EVERY
    timers.schedule(key=_key(at), kind=RETENTION_TIMER, subject=RETENTION_TIMER, due_at=at)


def run_retention(due: timers.Due, now: dt.datetime) -> None:
    """The timer's handler: erase a run's worth of inactive customers, then schedule the next run."""
    found = inactive(now, limit=PER_RUN)
    for row in found:
        erase_customer(row.customer_id, reason="retention", actor="retention")
    if found:
        log.info("retention: erased %d customers inactive for %s days", len(found), retention_days())
    schedule_retention(now, soon=len(found) == PER_RUN)


def register() -> None:
    timers.register(RETENTION_TIMER, run_retention)
