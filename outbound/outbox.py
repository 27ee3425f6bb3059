"""The webhook outbox: how its rows are woken, claimed and finished.

A delivery lane is (endpoint, customer): only the oldest pending row of a
lane may be claimed, so a customer's events reach an endpoint in log order,
and a row waiting for its retry holds back the ones behind it. A claim
leases such heads with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
(on SQLite the single writer serialises claims, and the conditional UPDATE
is the claim): any number of workers in any number of processes can run,
and a lane has at most one request in flight. A worker that dies leaves its
rows leased until ``lease_until``; then another takes them and sends the
same body again, under the same ``webhook-id``.

Every change to a row is conditional on ``pending``, so a row is finished
once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, Min, OuterRef, Q

from outbound.models import WebhookDelivery, WebhookEndpoint, WebhookState
from workers import wakeup

#: PostgreSQL NOTIFY channel (and Redis wake-up channel) of queued rows.
NOTIFY_CHANNEL = "parley_webhooks"

#: Outbox rows were queued in this process.
queued = wakeup.Signal()
_notifier = wakeup.CrossProcessNotifier(NOTIFY_CHANNEL)


def wake_delivery() -> None:
    """Tell delivery workers here and in other processes that rows were queued (a hint)."""
    queued.notify()
    _notifier.request()


def _free(now: dt.datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def claim(owner: str, now: dt.datetime, *, batch: int, lease_seconds: float) -> list[WebhookDelivery]:
    """Lease up to ``batch`` due heads of lanes (with their endpoints), oldest first."""
    pending = WebhookDelivery.objects.filter(state=WebhookState.PENDING)
    earlier = pending.filter(endpoint_id=OuterRef("endpoint_id"), customer_id=OuterRef("customer_id"), id__lt=OuterRef("id"))
    with transaction.atomic():
        ids = list(
            pending.select_for_update(skip_locked=True)
            .filter(_free(now), due_at__lte=now)
            .filter(~Exists(earlier))
            .order_by("id")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return []
        lease_until = now + dt.timedelta(seconds=lease_seconds)
        pending.filter(_free(now), pk__in=ids).update(lease_owner=owner, lease_until=lease_until)
        return list(WebhookDelivery.objects.filter(pk__in=ids, lease_owner=owner).select_related("endpoint").order_by("id"))


def next_due(now: dt.datetime) -> dt.datetime | None:
    """When a pending row may next become claimable without a wake-up (a retry, a lapsed lease)."""
    pending = WebhookDelivery.objects.filter(state=WebhookState.PENDING)
    times = [
        pending.filter(due_at__gt=now).aggregate(t=Min("due_at"))["t"],
        pending.filter(lease_until__gt=now).aggregate(t=Min("lease_until"))["t"],
    ]
    found = [t for t in times if t is not None]
    return min(found) if found else None


_LEASE_OFF: dict[str, Any] = {"lease_owner": "", "lease_until": None}


def delivered(row: WebhookDelivery, *, status: int, now: dt.datetime) -> None:
    WebhookDelivery.objects.filter(pk=row.pk, state=WebhookState.PENDING).update(
        state=WebhookState.DELIVERED, attempts=F("attempts") + 1, last_status=status, reason="",
        finished_at=now, **_LEASE_OFF,
    )


def retry(row: WebhookDelivery, *, status: int | None, reason: str, now: dt.datetime, at: dt.datetime) -> bool:
    """Count a failed attempt; try again at ``at``, or mark the row failed if that is past
    its give-up time. True when it will be retried."""
    common: dict[str, Any] = {"attempts": F("attempts") + 1, "last_status": status, **_LEASE_OFF}
    rows = WebhookDelivery.objects.filter(pk=row.pk, state=WebhookState.PENDING)
    if at > row.give_up_at:
        rows.update(state=WebhookState.FAILED, finished_at=now, reason=f"gave up: {reason}"[:300], **common)
        return False
    rows.update(due_at=at, reason=reason[:300], **common)
    return True


def disable(endpoint: WebhookEndpoint, *, reason: str, now: dt.datetime) -> None:
    """The receiver said 410 Gone: disable the endpoint and fail what it still had pending."""
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk, disabled_at__isnull=True).update(
            disabled_at=now, disabled_reason=reason[:300]
        )
        WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, state=WebhookState.PENDING).update(
            state=WebhookState.FAILED, finished_at=now, reason=f"endpoint disabled: {reason}"[:300], **_LEASE_OFF
        )


def release(owner: str, ids: Iterable[int]) -> None:
    WebhookDelivery.objects.filter(pk__in=list(ids), lease_owner=owner).update(**_LEASE_OFF)


def release_all(owner: str) -> None:
    WebhookDelivery.objects.filter(lease_owner=owner).update(**_LEASE_OFF)


def redeliver(ids: Iterable[int], *, now: dt.datetime, retry_for: float) -> int:
    """Queue these deliveries again (an operator's request), with a fresh retry window.

    Deliveries of disabled endpoints are left alone. The row goes back to
    its place in its lane (rows are ordered by id), so it is sent before
    anything of the same customer still pending behind it.
    """
    updated = WebhookDelivery.objects.filter(pk__in=list(ids), endpoint__disabled_at__isnull=True).update(
        state=WebhookState.PENDING, due_at=now, give_up_at=now + dt.timedelta(seconds=retry_for),
        finished_at=None, reason="redelivery requested", **_LEASE_OFF,
    )
    if updated:
        transaction.on_commit(wake_delivery)
    return updated
