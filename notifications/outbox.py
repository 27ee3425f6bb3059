"""The push outbox: how its rows are woken, claimed and finished.

The process manager (notifications.process_manager) writes one row per
(event, device) in the pipeline's transaction, then calls ``wake_delivery``.
Delivery lanes claim *devices* (subscription rows), not outbox rows: a claim
leases up to a batch of devices that have due rows, with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (on SQLite the single
writer already serialises the claim, and a conditional UPDATE is the
claim), and reads their due rows in log order. So any number of workers can
run, a device's pushes leave one at a time and in log order, and a Topic
replacement at the push service can never put an older count over a newer
one. A row is finished exactly once: every state change is conditional on
``pending``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, F, Min, OuterRef, Q, Subquery

from chat.events import stream_id
from eventstore.store import EventStore
from notifications.models import DeliveryState, PushDelivery, PushSubscription
from readmodels.folds import message_of, preview
from workers import wakeup

#: PostgreSQL NOTIFY channel (and Redis wake-up channel) of queued rows.
NOTIFY_CHANNEL = "parley_push"

#: Outbox rows were queued in this process (set by the process manager after its commit).
queued = wakeup.Signal()
_notifier = wakeup.CrossProcessNotifier(NOTIFY_CHANNEL)


def wake_delivery() -> None:
    """Tell delivery lanes here and in other processes that rows were queued (a hint)."""
    queued.notify()
    _notifier.request()


@dataclass
class Claim:
    """Devices claimed for a round; when none could be, the next time one may be."""

    lanes: list[Lane]
    next_wake: dt.datetime | None = None


@dataclass
class Lane:
    """A claimed device, its due rows in log order, and what the read models say
    of their messages now (current text, read or not)."""

    subscription: PushSubscription
    rows: list[PushDelivery]
    messages: dict[uuid.UUID, tuple[str, dt.datetime | None]]


def claim(owner: str, now: dt.datetime, *, batch: int, lease_seconds: float) -> Claim:
    """Lease up to ``batch`` devices whose oldest pending row is due, with their due rows.

    A device's rows go in log order (the process manager inserts them in
    reading order, so in id order): one held back by PUSH_DELAY_SECONDS
    holds back the rows behind it. One transaction; when nothing is due, it
    also says when something will be (``next_wake``).
    """
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    not_held = Q(hold_until__isnull=True) | Q(hold_until__lte=now)
    pending = PushDelivery.objects.filter(state=DeliveryState.PENDING)
    waiting_before = pending.filter(subscription_id=OuterRef("subscription_id"), due_at__gt=now, id__lt=OuterRef("id"))
    ready = pending.filter(due_at__lte=now).filter(~Exists(waiting_before))
    with transaction.atomic():
        # PostgreSQL: devices another worker is claiming are skipped, not
        # waited for. SQLite ignores FOR UPDATE; its write transaction is
        # exclusive anyway, and the conditional UPDATE below is the claim.
        candidates = list(
            PushSubscription.objects.select_for_update(skip_locked=True)
            .filter(free, not_held, pk__in=Subquery(ready.values("subscription_id")))
            .values_list("pk", flat=True)[:batch]
        )
        if not candidates:
            return Claim([], next_wake(now))
        lease_until = now + dt.timedelta(seconds=lease_seconds)
        PushSubscription.objects.filter(free, pk__in=candidates).update(lease_owner=owner, lease_until=lease_until)
        subs = {s.pk: s for s in PushSubscription.objects.filter(pk__in=candidates, lease_owner=owner)}
        rows: dict[Any, list[PushDelivery]] = {pk: [] for pk in subs}
        blocked: set[Any] = set()
        for row in pending.filter(subscription_id__in=list(subs)).order_by("id"):
            if row.subscription_id in blocked or row.due_at > now:
                blocked.add(row.subscription_id)
            else:
                rows[row.subscription_id].append(row)
        # One query for every message of the claim: read since it was queued? edited?
        messages = message_states({r.message_id for rs in rows.values() for r in rs if r.message_id is not None})
    return Claim([Lane(subs[pk], rows[pk], messages) for pk in subs])


def message_states(message_ids: set[uuid.UUID]) -> dict[uuid.UUID, tuple[str, dt.datetime | None]]:
    """Each message's preview text (readmodels.folds.preview: its body, or its
    attachments' names when it has no text) and read time (None: unread) now,
    from its own stream folded by the timeline's own fold.

    The log, not a read model: a read committed a moment ago is seen even
    while the pipeline has yet to process it. One query for all of them.
    """
    streams = EventStore().read_streams([stream_id(m) for m in message_ids])
    out: dict[uuid.UUID, tuple[str, dt.datetime | None]] = {}
    for events in streams.values():
        row = message_of(events)
        if row is not None:
            out[row["message_id"]] = (preview(row["body"], row["attachments"]), row["read_at"])
    return out


def next_wake(now: dt.datetime) -> dt.datetime | None:
    """The earliest time a pending row may become claimable without a wake-up:
    its due time (PUSH_DELAY_SECONDS), its device's hold (429, backoff) or
    the end of a lease a crashed worker left behind."""
    pending = PushDelivery.objects.filter(state=DeliveryState.PENDING)
    with_pending = PushSubscription.objects.filter(Exists(pending.filter(subscription_id=OuterRef("pk"))))
    times = [
        pending.filter(due_at__gt=now).aggregate(t=Min("due_at"))["t"],
        with_pending.filter(hold_until__gt=now).aggregate(t=Min("hold_until"))["t"],
        with_pending.filter(lease_until__gt=now).aggregate(t=Min("lease_until"))["t"],
    ]
    found = [t for t in times if t is not None]
    return min(found) if found else None


def release(owner: str, subscription_ids: list[Any]) -> None:
    if subscription_ids:
        PushSubscription.objects.filter(pk__in=subscription_ids, lease_owner=owner).update(lease_owner="", lease_until=None)


def release_all(owner: str) -> None:
    PushSubscription.objects.filter(lease_owner=owner).update(lease_owner="", lease_until=None)


@dataclass(frozen=True)
class Sent:
    """A push the service accepted: its row, and the badge it gave the device."""

    row: PushDelivery
    subscription: PushSubscription
    unread: int
    tx: int
    position: int


# Mark rows sent, record each device's newest badge (only for rows really
# marked, and only while the device still belongs to that customer) and
# hand the devices back: one statement for a whole round of pushes.
_MARK_SENT_SQL = """
WITH sent AS (
    UPDATE parley_push_deliveries
    SET state = 'sent', finished_at = %(now)s, attempts = attempts + 1, reason = ''
    WHERE id = ANY(%(rows)s) AND state = 'pending'
    RETURNING subscription_id
), badge AS (
    SELECT * FROM unnest(%(subs)s::uuid[], %(customers)s::uuid[], %(unread)s::int[], %(tx)s::bigint[], %(position)s::bigint[])
        AS b(sub, customer, unread, tx, position)
)
UPDATE parley_push_subscriptions s SET
    badge_unread = CASE WHEN badge.sub IN (SELECT subscription_id FROM sent) AND s.customer_id = badge.customer
                        THEN badge.unread ELSE s.badge_unread END,
    badge_tx = CASE WHEN badge.sub IN (SELECT subscription_id FROM sent) AND s.customer_id = badge.customer
                    THEN badge.tx ELSE s.badge_tx END,
    badge_position = CASE WHEN badge.sub IN (SELECT subscription_id FROM sent) AND s.customer_id = badge.customer
                          THEN badge.position ELSE s.badge_position END,
    hold_until = CASE WHEN badge.sub IN (SELECT subscription_id FROM sent) AND s.customer_id = badge.customer
                      THEN NULL ELSE s.hold_until END,
    lease_owner = CASE WHEN s.lease_owner = %(owner)s THEN '' ELSE s.lease_owner END,
    lease_until = CASE WHEN s.lease_owner = %(owner)s THEN NULL ELSE s.lease_until END
FROM badge
WHERE s.id = badge.sub
"""


def mark_sent(sent: list[Sent], *, owner: str, now: dt.datetime) -> None:
    """Mark these rows sent, record each device's newest badge, and hand the
    devices back, in one commit for a whole round of pushes.

    A worker that dies before this commit leaves the rows pending: they are
    pushed again once the lease runs out, with the same payload and Topic
    (the at-least-once edge). A row marked sent is never sent again.
    """
    if not sent:
        return
    newest: dict[Any, Sent] = {}
    for s in sent:  # in push order, so the last one per device is its newest badge
        newest[s.subscription.pk] = s
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute(
                _MARK_SENT_SQL,
                {
                    "now": now, "rows": [s.row.pk for s in sent], "owner": owner,
                    "subs": [s.subscription.pk for s in newest.values()],
                    "customers": [s.row.customer_id for s in newest.values()],
                    "unread": [s.unread for s in newest.values()],
                    "tx": [s.tx for s in newest.values()],
                    "position": [s.position for s in newest.values()],
                },
            )
        return
    with transaction.atomic():
        marked = set(
            PushDelivery.objects.filter(pk__in=[s.row.pk for s in sent], state=DeliveryState.PENDING).values_list(
                "subscription_id", flat=True
            )
        )
        PushDelivery.objects.filter(pk__in=[s.row.pk for s in sent], state=DeliveryState.PENDING).update(
            state=DeliveryState.SENT, finished_at=now, attempts=F("attempts") + 1, reason=""
        )
        for s in newest.values():
            if s.subscription.pk in marked:  # the count only while the device still belongs to this customer
                PushSubscription.objects.filter(pk=s.subscription.pk, customer_id=s.row.customer_id).update(
                    badge_unread=s.unread, badge_tx=s.tx, badge_position=s.position, hold_until=None
                )
        release(owner, list(newest))


def finish(row: PushDelivery, state: str, reason: str, now: dt.datetime, *, attempted: bool = False, failures: int | None = None) -> None:
    """Give a pending row its final state (``sent`` goes through ``mark_sent``)."""
    changes: dict[str, Any] = {"state": state, "reason": reason[:300], "finished_at": now}
    if attempted:
        changes["attempts"] = F("attempts") + 1
    if failures is not None:
        changes["failures"] = failures
    PushDelivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING).update(**changes)
    row.state = state


def hold(row: PushDelivery, sub: PushSubscription, *, failures: int, reason: str, until: dt.datetime) -> None:
    """The push failed for now: count it, and hold the whole device until ``until``
    (what follows must not overtake this row)."""
    with transaction.atomic():
        PushDelivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING).update(
            failures=failures, attempts=F("attempts") + 1, reason=reason[:300]
        )
        PushSubscription.objects.filter(pk=sub.pk).update(hold_until=until)


def forget_device(sub: PushSubscription) -> None:
    """The push service says the subscription is gone: delete it (its rows go with it)."""
    PushSubscription.objects.filter(pk=sub.pk).delete()


def purge(cutoff: dt.datetime) -> int:
    """Delete finished rows older than ``cutoff``."""
    deleted, _ = PushDelivery.objects.filter(finished_at__lt=cutoff).exclude(state=DeliveryState.PENDING).delete()
    return deleted
