"""The push process manager: turns chat events into intended pushes.

A consumer group of its own (``PUSH``, composed in project/bootstrap.py)
that follows the read models: it reads the log only up to the pipeline's
checkpoint, and takes, for each event it handles, the rows the read models
left as of that event (readmodels.asof): the badge right after the event,
and the message as the API shows it. It never counts unread messages
itself.

On ``MessageSent`` by an agent it records, for each of the customer's
subscriptions, an outbox row with that badge and the message; on
``MessageMarkedAsRead`` by the customer, a badge-only row. The rows are
written in the group's transaction with its checkpoint, and are unique per
(event id, subscription): a batch that is redone after a crash, or an event
seen twice, cannot queue a second push. It only records intent; the
delivery worker (``notifications.worker``) sends. A failure here stalls
push alone: badges, lists, frames and webhooks go on.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.conf import settings

from chat.events import MessageSent
from eventstore.events import RecordedEvent
from eventstore.reading import Batch
from eventstore.unit import Unit
from notifications.config import push_ttl
from notifications.models import PushDelivery, PushSubscription
from notifications.outbox import wake_delivery
from notifications.payload import PREVIEW_CHARS
from readmodels import asof
from readmodels.asof import forgotten
from readmodels.folds import moves_badge, preview

#: The consumer group (and checkpoint) of the push process manager.
PUSH = "push"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def push_preview(message: dict[str, Any]) -> dict[str, Any]:
    """The ``message`` of a push payload, from the API's message object
    (a message of attachments alone: "📎 photo.png")."""
    return {
        "message_id": message["message_id"],
        "sender_name": message["sender"]["name"],
        "preview": preview(message["body"], message["attachments"])[: PREVIEW_CHARS + 1],
        "sent_at": message["sent_at"],
    }


def forget_customer(unit: Unit, customer_id: uuid.UUID) -> None:
    """An erased customer's devices and pushes go, after the batch's other writes."""
    for model in (PushDelivery, PushSubscription):
        where, params = unit.table(model).among("customer_id", [customer_id])
        unit.then(f'DELETE FROM "{model._meta.db_table}" WHERE {where}', params)


class PushProcessManager:
    """Consumer group ``push``: records one outbox row per (event, subscription)."""

    name = PUSH
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead", "CustomerErased"})

    def prepare(self, batch: Batch) -> None:
        relevant = [r for r in batch.events if moves_badge(r)]
        if relevant:
            assert batch.unit is not None
            batch.unit.want_by(PushSubscription, "customer_id", {r.event.customer_id for r in relevant})  # type: ignore[attr-defined]
            asof.for_events(batch.unit, relevant)

    def handle(self, batch: Batch) -> int:
        relevant = [r for r in batch.events if moves_badge(r)]
        unit = batch.unit
        assert unit is not None
        for r in batch.events:
            if r.event_type == "CustomerErased":
                forget_customer(unit, r.event.customer_id)  # type: ignore[attr-defined]
        if not relevant:
            return 0
        rows_of = asof.in_unit(unit)
        now = _now()
        ttl = dt.timedelta(seconds=push_ttl())
        delay = dt.timedelta(seconds=max(0.0, float(settings.PUSH_DELAY_SECONDS)))
        queued = 0
        for r in relevant:
            e: Any = r.event
            subscriptions = unit.find(PushSubscription, "customer_id", e.customer_id)
            expires_at = r.recorded_at + ttl
            # History older than the TTL (a rebuild, a long outage) would be
            # discarded by the push service anyway: don't queue it.
            if not subscriptions or expires_at <= now:
                continue
            rows = rows_of(r)
            if rows is None and forgotten(r):
                continue  # erased meanwhile: nothing is sent about them
            if rows is None or "badge" not in rows:
                raise LookupError(f"no read-model rows as of event {r.event_id} at position {r.position}")
            message = push_preview(rows["message"]) if isinstance(e, MessageSent) else None
            # Only a new message waits (PUSH_DELAY_SECONDS): a lower count is news at once.
            due_at = r.recorded_at + delay if message else r.recorded_at
            for sub in subscriptions:
                queued += self._queue(unit, r, sub, rows["badge"]["unread"], message, now, due_at, expires_at)
        return queued

    @staticmethod
    def _queue(unit: Any, r: RecordedEvent, sub: dict[str, Any], unread: int, message: dict[str, Any] | None,
               now: dt.datetime, due_at: dt.datetime, expires_at: dt.datetime) -> int:
        # A device hears about what happened after it subscribed (so a
        # replay of the log never tells a new device old news).
        if sub["created_at"] > r.recorded_at:
            return 0
        # The unique (event_id, subscription) key makes a replayed event a no-op.
        unit.add(PushDelivery, {
            "event_id": r.event_id, "subscription_id": sub["id"], "customer_id": r.event.customer_id,  # type: ignore[attr-defined]
            "tx": r.tx, "position": r.position, "unread": unread, "message": message,
            "message_id": r.event.message_id if message else None,  # type: ignore[attr-defined]
            "created_at": now, "due_at": due_at, "expires_at": expires_at,
        }, unless_exists=("event_id", "subscription_id"))
        return 1

    def reset(self) -> None:
        # The outbox is intent already acted on, not a view to rebuild: a
        # replay must not push history again.
        return None

    async def after_commit(self, effects: Any) -> None:
        if effects:
            wake_delivery()
