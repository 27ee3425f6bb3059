"""Erasing a customer across contexts, and erasing those inactive past the retention period.

An erasure is the customers context's (the key destroyed, the contact record
deleted, CustomerErased published, which every read model and process
manager follows) plus the attachments context's (the files deleted). The API
and the retention timer both erase through ``api.privacy.erase_customer``.

Retention (``PARLEY_RETENTION_DAYS``, off at 0): a timer of the durable
scheduler (workers.timers) fires every hour, erases the customers whose
conversation has had no activity for that many days (a bounded number per
run; the next run comes at once while more remain), and schedules the next
run. ``python manage.py erase_inactive --dry-run`` lists who would go.

After a restore, ``python manage.py reapply_erasures`` makes every erasure
hold again (``reapply_erasures``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from accounts.popouts import popout_sign_out
from api.privacy import erase_customer
from attachments.services import attachments_erase_many, attachments_sweep
from chat.ports import customer_directory
from conversations.models import Routing
from customers.services import customer_erase
from eventstore import keys
from notifications.models import EmailOutbox, PushDelivery, PushSubscription
from outbound.models import WebhookDelivery
from readmodels.models import Conversation
from workers import timers

log = logging.getLogger(__name__)

RETENTION_TIMER = "privacy.retention"
#: Customers one run erases at most (each is one transaction's work; the next run follows at once).
PER_RUN = 200
EVERY = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Reapplied:
    customers: int  #: erased customers, every one checked
    queued: int  #: pushes, devices, webhooks and emails about them deleted
    attachments: int  #: their attachments deleted, rows and files
    files: int  #: stored files that no row names deleted (``sweep_files``)


def reapply_erasures(*, sweep_files: bool = False, batch: int = 500) -> Reapplied:
    """Make every erasure hold again after a restore (docs/operations.md, "Backup and restore").

    A database restored from a dump older than an erasure, with the key table
    from its newest backup, has the customer's key destroyed but their
    contact record, queues, attachments, timers and read models back, and
    maybe no CustomerErased. For every subject whose key is erased this
    erases them again (``customer_erase`` deletes what came back and appends
    CustomerErased if the log lost it; every read model and process manager
    follows that event), deletes what is queued about them at once (a
    delivery worker could send it before its group reaches the event), and
    deletes their attachments, rows and files. ``sweep_files``: also every
    stored file that no row names (media restored from a backup newer than
    the dump); only while no Parley process runs.
    """
    customers = queued = attachments = 0
    after = ""
    while subjects := keys.erased_subjects(after=after, batch=batch):
        after = subjects[-1]
        customer_ids = [c for c in map(_customer_id, subjects) if c is not None]
        for customer_id in customer_ids:
            customer_erase(customer_id=customer_id, reason="restore", actor="reapply_erasures")
            customer_directory().forget(customer_id)
            popout_sign_out(customer_id=customer_id)
        customers += len(customer_ids)
        queued += _forget_queued(customer_ids)
        attachments += attachments_erase_many(customer_ids=customer_ids)
    files = attachments_sweep() if sweep_files else 0
    return Reapplied(customers, queued, attachments, files)


def _customer_id(subject: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(subject)
    except ValueError:
        return None  # a subject that is no customer's: nothing of theirs is queued or stored


def _forget_queued(customer_ids: list[uuid.UUID]) -> int:
    """Delete the rows queued or kept about these customers, as their groups do on CustomerErased
    (the ``customer.erased`` webhook stays), and their conversations' routing."""
    with transaction.atomic():
        deleted = sum(model.objects.filter(customer_id__in=customer_ids).delete()[0]
                      for model in (PushDelivery, PushSubscription, EmailOutbox))
        deleted += (WebhookDelivery.objects.filter(customer_id__in=customer_ids)
                    .exclude(event_type="customer.erased").delete()[0])
        Routing.objects.filter(customer_id__in=customer_ids).delete()
    return deleted


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
