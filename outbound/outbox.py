"""The webhook outbox: its queue (workers.jobs), how its rows are claimed and how a round is recorded.

A delivery lane is (endpoint, customer): only the oldest pending row of a
lane may be claimed, so a customer's events reach an endpoint in log order,
and a row waiting for its retry holds back the ones behind it. Lanes are
grouped by endpoint: a round holds rows of one endpoint, and a process
works on at most ``WEBHOOK_ENDPOINT_CONCURRENCY`` rounds of one endpoint at
once (workers.pool), so a hung or slow receiver never holds every delivery
thread. A claim leases its rows with ``SELECT ... FOR UPDATE SKIP LOCKED``
on PostgreSQL (on SQLite the single writer serialises claims, and the
conditional UPDATE is the claim): any number of workers in any number of
processes can run, and a lane has at most one request in flight. A worker
that dies leaves its rows leased until the lease runs out; then another
takes them and sends the same body again, under the same ``webhook-id``.

Every change to a row is conditional on ``pending``, so a row is finished
once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from outbound.models import WebhookDelivery, WebhookEndpoint, WebhookState
from workers import jobs

#: PostgreSQL NOTIFY channel (and Redis wake-up channel) of queued rows.
NOTIFY_CHANNEL = "parley_webhooks"

#: The webhook outbox as a queue of workers.jobs.
WEBHOOKS: jobs.Queue[WebhookDelivery] = jobs.Queue(
    "webhooks", WebhookDelivery, channel=NOTIFY_CHANNEL, error="reason", error_limit=300,
    lane=("endpoint_id", "customer_id"), group="endpoint_id", lease_until="lease_until",
)

#: Outbox rows were queued in this process.
queued = WEBHOOKS.signal


def wake_delivery() -> None:
    """Tell delivery workers here and in other processes that rows were queued (a hint)."""
    WEBHOOKS.wake()


def claim(
    owner: str, now: dt.datetime, *, rounds: int, batch: int, lease_seconds: float,
    busy: dict[Hashable, int] | None = None, per_endpoint: int | None = None,
) -> list[jobs.Round[WebhookDelivery]]:
    """Lease up to ``rounds`` rounds of up to ``batch`` due heads of lanes (with their
    endpoints), oldest due first; a round's rows are one endpoint's."""
    return WEBHOOKS.claim(
        now, owner=owner, lease=lease_seconds, rounds=rounds, lanes=batch, per_lane=1,
        busy=busy, per_group=per_endpoint, related=("endpoint",),
    )


def next_due(now: dt.datetime) -> dt.datetime | None:
    """When a pending row may next become claimable without a wake-up (a retry, a lapsed lease)."""
    return WEBHOOKS.next_due(now)


@dataclass
class Outcome:
    """What a round came to, recorded with the other rounds that finished."""

    round: jobs.Round[WebhookDelivery]
    attempts: int = 0
    done: list[jobs.Done] = field(default_factory=list)
    retry: list[jobs.Retry] = field(default_factory=list)
    #: Endpoints that answered 410 Gone (or were disabled meanwhile), with the reason.
    disabled: dict[Any, str] = field(default_factory=dict)

    def left(self) -> dict[Any, dt.datetime]:
        """The round's rows nothing was decided for: handed back as they were."""
        decided = {d.pk for d in self.done} | {r.pk for r in self.retry}
        return {
            row.pk: self.round.due[row.pk] for row in self.round.rows()
            if row.pk not in decided and row.endpoint_id not in self.disabled
        }


def delivered(row: WebhookDelivery, *, status: int) -> jobs.Done:
    return jobs.Done(row.pk, WebhookState.DELIVERED, values=jobs.values(last_status=status))


def retry(row: WebhookDelivery, *, status: int | None, reason: str, at: dt.datetime) -> jobs.Done | jobs.Retry:
    """A failed attempt: try again at ``at``, or mark the row failed if that is past its give-up time."""
    if at > row.give_up_at:
        return jobs.Done(row.pk, WebhookState.FAILED, f"gave up: {reason}", values=jobs.values(last_status=status))
    return jobs.Retry(row.pk, at, reason, values=jobs.values(last_status=status))


def settle(outcomes: list[Outcome], *, owner: str, now: dt.datetime) -> set[Any]:
    """Record rounds: answers, retries and the rest handed back in one commit, then the
    endpoints to disable. Returns the rows it finished."""
    left: dict[Any, dt.datetime] = {}
    for o in outcomes:
        left.update(o.left())
    finished = WEBHOOKS.settle(
        now, owner=owner, done=[d for o in outcomes for d in o.done], retry=[r for o in outcomes for r in o.retry],
        release=left,
    )
    # Apart: disabling fails whatever the endpoint still has pending, the rows just settled included.
    for o in outcomes:
        for endpoint_id, reason in o.disabled.items():
            disable(endpoint_id, reason=reason, now=now)
    return finished


def disable(endpoint_id: Any, *, reason: str, now: dt.datetime) -> None:
    """The receiver said 410 Gone: disable the endpoint and fail what it still had pending."""
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint_id, disabled_at__isnull=True).update(
            disabled_at=now, disabled_reason=reason[:300]
        )
        WebhookDelivery.objects.filter(endpoint_id=endpoint_id, state=WebhookState.PENDING).update(
            state=WebhookState.FAILED, finished_at=now, reason=f"endpoint disabled: {reason}"[:300],
            lease_owner="", lease_until=None,
        )


def release(owner: str, rounds: list[jobs.Round[WebhookDelivery]]) -> None:
    due: dict[Any, dt.datetime] = {}
    for r in rounds:
        due.update(r.due)
    WEBHOOKS.release(owner, due)


def release_all(owner: str, now: dt.datetime) -> None:
    WEBHOOKS.release_owner(owner, now)


def purge(cutoff: dt.datetime) -> int:
    """Delete finished rows older than ``cutoff``."""
    return WEBHOOKS.purge(cutoff)


def redeliver(ids: Iterable[int], *, now: dt.datetime, retry_for: float) -> int:
    """Queue these deliveries again (an operator's request), with a fresh retry window.

    Deliveries of disabled endpoints are left alone. The row goes back to
    its place in its lane (rows are ordered by id), so it is sent before
    anything of the same customer still pending behind it.
    """
    updated = WebhookDelivery.objects.filter(pk__in=list(ids), endpoint__disabled_at__isnull=True).update(
        state=WebhookState.PENDING, due_at=now, give_up_at=now + dt.timedelta(seconds=retry_for),
        finished_at=None, reason="redelivery requested", lease_owner="", lease_until=None,
    )
    if updated:
        WEBHOOKS.wake_on_commit()
    return updated
