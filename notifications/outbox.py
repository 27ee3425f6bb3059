"""The push outbox: its queue (workers.jobs), how its rows are claimed and how a round is recorded.

The process manager (notifications.process_manager) writes one row per
(event, device) in the pipeline's transaction, then calls ``wake_delivery``.
A device is a lane of the queue: only its oldest pending row may be
claimed, with the due rows right behind it, leased together; so any number
of workers can run, a device's pushes leave one at a time and in log order,
and a Topic replacement at the push service can never put an older count
over a newer one. A row is finished exactly once: every state change is
conditional on ``pending``.

Besides its rows, a device (``PushSubscription``) keeps the newest badge
the push service accepted for it, and ``hold_until``, set when a push
service asks to wait (429 Retry-After) or fails (backoff), cleared by the
next accepted push.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from chat.events import stream_id
from eventstore.store import EventStore
from notifications.models import DeliveryState, PushDelivery, PushSubscription
from readmodels.folds import message_of, preview
from workers import jobs

#: PostgreSQL NOTIFY channel (and Redis wake-up channel) of queued rows.
NOTIFY_CHANNEL = "parley_push"

#: The push outbox as a queue of workers.jobs: a device is a lane.
PUSH: jobs.Queue[PushDelivery] = jobs.Queue(
    "push", PushDelivery, channel=NOTIFY_CHANNEL, error="reason", error_limit=300, lane=("subscription_id",)
)

#: Outbox rows were queued in this process (set by the process manager after its commit).
queued = PUSH.signal


def wake_delivery() -> None:
    """Tell delivery workers here and in other processes that rows were queued (a hint)."""
    PUSH.wake()


@dataclass
class Lane:
    """A claimed device, its due rows in log order, and what the read models say
    of their messages now (current text, read or not)."""

    subscription: PushSubscription
    rows: list[PushDelivery]
    messages: dict[uuid.UUID, tuple[str, dt.datetime | None]]


@dataclass
class Round:
    """Devices claimed together, pushed by one thread in turn."""

    claim: jobs.Round[PushDelivery]
    lanes: list[Lane]
    #: The row being pushed, for the log record if pushing it raises.
    current: PushDelivery | None = None
    group: Hashable = None


#: Devices the previous release's workers are not sending to: it leased and
#: held devices, not rows, and may still run beside this one during a deploy.
#: (A condition on the claim's candidate row ``d``; the hold this release
#: writes is on the row too.)
_PREVIOUS_RELEASE_FREE = (
    "NOT EXISTS (SELECT 1 FROM parley_push_subscriptions s WHERE s.id = d.subscription_id "
    "AND (s.lease_until > %(now)s OR s.hold_until > %(now)s))"
)


def claim(owner: str, now: dt.datetime, *, rounds: int, batch: int, lease_seconds: float) -> list[Round]:
    """Lease up to ``rounds`` rounds of up to ``batch`` devices whose oldest pending row is due,
    each with its due rows in log order.

    A device's rows go in log order (the process manager inserts them in
    reading order, so in id order): one held back (PUSH_DELAY_SECONDS, a
    retry) holds back the rows behind it. The heads are leased in one
    statement and the rows behind them in another; then one query reads the
    devices and one every message of the claim: read since it was queued?
    edited?
    """
    claimed = PUSH.claim(
        now, owner=owner, lease=lease_seconds, rounds=rounds, lanes=batch, per_lane=None,
        where=_PREVIOUS_RELEASE_FREE,
    )
    if not claimed:
        return []
    subs = PushSubscription.objects.in_bulk([lane.key[0] for r in claimed for lane in r.lanes])
    messages = message_states(
        {row.message_id for r in claimed for row in r.rows() if row.message_id is not None}
    )
    # A device deleted since (its rows went with it) is simply not there.
    return [
        Round(r, [Lane(subs[lane.key[0]], lane.rows, messages) for lane in r.lanes if lane.key[0] in subs])
        for r in claimed
    ]


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


def next_due(now: dt.datetime) -> dt.datetime | None:
    """The earliest time a pending row falls due without a wake-up: its delay
    (PUSH_DELAY_SECONDS), its retry or hold, the end of a lease a crashed
    worker left behind."""
    return PUSH.next_due(now)


@dataclass(frozen=True)
class Sent:
    """A push the service accepted: its row, and the badge it gave the device."""

    row: PushDelivery
    subscription: PushSubscription
    unread: int
    tx: int
    position: int


@dataclass
class Outcome:
    """What a round came to, to record in one commit with the other rounds that finished."""

    round: Round
    sent: list[Sent] = field(default_factory=list)
    done: list[jobs.Done] = field(default_factory=list)
    retry: list[jobs.Retry] = field(default_factory=list)
    holds: dict[Any, dt.datetime] = field(default_factory=dict)  # device -> held until
    gone: list[PushSubscription] = field(default_factory=list)
    pushes: int = 0

    def left(self) -> dict[Any, dt.datetime]:
        """The rows of the round nothing was decided for: handed back as they were."""
        decided = {s.row.pk for s in self.sent} | {d.pk for d in self.done} | {r.pk for r in self.retry}
        gone = {s.pk for s in self.gone}
        return {
            pk: due for lane in self.round.lanes for pk, due in
            ((row.pk, self.round.claim.due[row.pk]) for row in lane.rows)
            if pk not in decided and lane.subscription.pk not in gone
        }


# The newest badge of each device whose push was marked, only while the
# device still belongs to that customer; an accepted push ends a hold. One
# statement for a whole settlement.
_BADGES_SQL = """
UPDATE parley_push_subscriptions s SET
    badge_unread = b.unread, badge_tx = b.tx, badge_position = b.position, hold_until = NULL
FROM unnest(%(subs)s::uuid[], %(customers)s::uuid[], %(unread)s::int[], %(tx)s::bigint[], %(position)s::bigint[])
    AS b(sub, customer, unread, tx, position)
WHERE s.id = b.sub AND s.customer_id = b.customer
"""


def settle(outcomes: list[Outcome], *, owner: str, now: dt.datetime) -> dict[str, int]:
    """Record rounds in one commit: rows finished or rescheduled, each device's newest
    badge, holds, devices the push service called gone, and the rest handed back.
    Returns how many rows reached each final state.

    A worker that dies before this commit leaves its rows leased: they are
    pushed again once the lease runs out, with the same payload and Topic
    (the at-least-once edge). A row marked sent is never sent again.
    """
    states = {d.pk: d.state for o in outcomes for d in o.done}
    sent = [s for o in outcomes for s in o.sent]
    states.update({s.row.pk: DeliveryState.SENT for s in sent})
    left: dict[Any, dt.datetime] = {}
    for o in outcomes:
        left.update(o.left())
    with transaction.atomic():
        finished = PUSH.settle(
            now, owner=owner,
            done=[*(o for out in outcomes for o in out.done), *(jobs.Done(s.row.pk, DeliveryState.SENT) for s in sent)],
            retry=[r for o in outcomes for r in o.retry],
            release=left,
        )
        newest: dict[Any, Sent] = {}
        for s in sent:  # in push order, so the last one per device is its newest badge
            if s.row.pk in finished:
                newest[s.subscription.pk] = s
        _record_badges(list(newest.values()))
        for o in outcomes:
            for sub, until in o.holds.items():
                PushSubscription.objects.filter(pk=sub).update(hold_until=until)
        gone = [s.pk for o in outcomes for s in o.gone]
        if gone:
            PushSubscription.objects.filter(pk__in=gone).delete()  # their rows go with them
    counts: dict[str, int] = {}
    for pk in finished:
        counts[states[pk]] = counts.get(states[pk], 0) + 1
    return counts


def _record_badges(newest: list[Sent]) -> None:
    if not newest:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute(_BADGES_SQL, {
                "subs": [s.subscription.pk for s in newest], "customers": [s.row.customer_id for s in newest],
                "unread": [s.unread for s in newest], "tx": [s.tx for s in newest],
                "position": [s.position for s in newest],
            })
        return
    for s in newest:  # the count only while the device still belongs to this customer
        PushSubscription.objects.filter(pk=s.subscription.pk, customer_id=s.row.customer_id).update(
            badge_unread=s.unread, badge_tx=s.tx, badge_position=s.position, hold_until=None
        )


def release(owner: str, rounds: list[Round]) -> None:
    """Hand back rounds nothing was done with."""
    due: dict[Any, dt.datetime] = {}
    for r in rounds:
        due.update(r.claim.due)
    PUSH.release(owner, due)


def release_all(owner: str, now: dt.datetime) -> None:
    PUSH.release_owner(owner, now)


def purge(cutoff: dt.datetime) -> int:
    """Delete finished rows older than ``cutoff``."""
    return PUSH.purge(cutoff)
