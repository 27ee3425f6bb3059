"""The push process manager: turns chat events into intended pushes.

A consumer of the log (see ``eventstore.runner``). On ``MessageSent`` by an
agent it records, for each of the customer's subscriptions, an outbox row
with the badge as of that event and the message; on ``MessageMarkedAsRead``
by the customer, a badge-only row. The rows are written inside the runner's
transaction, together with this consumer's checkpoint, and are unique per
(event id, subscription): a batch that is redone after a crash, or an event
seen twice, cannot queue a second push. It only records intent; the delivery
worker (``notifications.worker``) sends.

It reads the badge projection as of each event: it runs in the pipeline
after the projections, inside the same transaction, so the badge history
already holds the batch's own changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

from chat.events import MessageMarkedAsRead, MessageSent, SenderKind
from eventstore.events import RecordedEvent
from eventstore.reading import Batch
from notifications.config import push_ttl
from notifications.models import PushDelivery, PushSubscription
from notifications.outbox import wake_delivery
from notifications.payload import PREVIEW_CHARS
from readmodels.present import preview_text, rfc3339
from readmodels.projections import badges_after


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class PushProcessManager:
    """Consumer ``push``: records one outbox row per (event, subscription)."""

    name = "push"
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead"})

    def prepare(self, batch: Batch) -> None:
        relevant = [r for r in batch.events if _wants_push(r)]
        if relevant:
            assert batch.unit is not None
            batch.unit.want_by(PushSubscription, "customer_id", {r.event.customer_id for r in relevant})  # type: ignore[attr-defined]

    def handle(self, batch: Batch) -> int:
        relevant = [r for r in batch.events if _wants_push(r)]
        if not relevant:
            return 0
        unit = batch.unit
        assert unit is not None
        targets = {
            r.event.customer_id: unit.find(PushSubscription, "customer_id", r.event.customer_id)  # type: ignore[attr-defined]
            for r in relevant
        }
        relevant = [r for r in relevant if targets[r.event.customer_id]]  # type: ignore[attr-defined]
        if not relevant:
            return 0
        now = _now()
        badges = badges_after(unit, relevant)
        ttl = dt.timedelta(seconds=push_ttl())
        delay = dt.timedelta(seconds=max(0.0, float(settings.PUSH_DELAY_SECONDS)))
        queued = 0
        for r in relevant:
            e = r.event
            expires_at = r.recorded_at + ttl
            # History older than the TTL (a rebuild, a long outage) would be
            # discarded by the push service anyway: don't queue it.
            if expires_at <= now:
                continue
            if isinstance(e, MessageSent):
                message: dict[str, Any] | None = {
                    "message_id": str(e.message_id),
                    "sender_name": e.sender_name,
                    # A message of attachments alone: "📎 photo.png".
                    "preview": preview_text(e.body, e.attachments)[: PREVIEW_CHARS + 1],
                    "sent_at": rfc3339(e.sent_at),
                }
                # Only a new message waits: a lower count is news at once.
                due_at = r.recorded_at + delay
            else:
                message, due_at = None, r.recorded_at
            for sub in targets[e.customer_id]:  # type: ignore[attr-defined]
                # A device hears about what happened after it subscribed (so a
                # replay of the log never tells a new device old news).
                if sub["created_at"] > r.recorded_at:
                    continue
                # The unique (event_id, subscription) key makes a replayed event a no-op.
                unit.add(PushDelivery, {
                    "event_id": r.event_id,
                    "subscription_id": sub["id"],
                    "customer_id": e.customer_id,  # type: ignore[attr-defined]
                    "tx": r.tx,
                    "position": r.position,
                    "unread": badges[r.cursor],
                    "message": message,
                    "message_id": e.message_id if message else None,  # type: ignore[attr-defined]
                    "created_at": now,
                    "due_at": due_at,
                    "expires_at": expires_at,
                }, unless_exists=("event_id", "subscription_id"))
                queued += 1
        return queued

    def reset(self) -> None:
        # The outbox is intent already acted on, not a view to rebuild: a
        # replay must not push history again. Rows older than the TTL are
        # never recreated, younger ones collide with the unique key.
        return None

    async def after_commit(self, effects: Any) -> None:
        if effects:
            wake_delivery()


def _wants_push(r: RecordedEvent) -> bool:
    e = r.event
    if isinstance(e, MessageSent):
        return e.sender_kind == SenderKind.AGENT
    if isinstance(e, MessageMarkedAsRead):
        return e.reader_kind == SenderKind.CUSTOMER
    return False
