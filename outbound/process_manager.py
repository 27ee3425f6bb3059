"""The webhook process manager: turns published events into intended webhook deliveries.

A member of the pipeline (eventstore.runner). For each event with a webhook
type (outbound.types) it writes, for every enabled endpoint that wants that
type and existed when the event was recorded, one outbox row holding the
exact body to send. The rows are written in the pipeline's transaction,
with its checkpoint, and are unique per (event id, endpoint): a batch redone
after a crash cannot queue a second delivery. It records intent; the
delivery workers (outbound.worker) send.

It runs before the projections in each batch, so the read-model rows it
loads are as of the batch's start; it then applies the batch's events in
order itself, so every body shows the message or customer as of its event
(a message sent and read in one batch is announced unread, then read).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from django.conf import settings

from chat.events import MessageEdited, MessageMarkedAsRead, MessageSent
from conversations.events import WORKFLOW_EVENT_TYPES, NoteAdded
from customers.events import ContactDetailsChanged, CustomerRegistered
from eventstore.reading import Batch
from eventstore.tables import Row
from eventstore.unit import Unit
from outbound.models import WebhookDelivery, WebhookEndpoint
from outbound.outbox import wake_delivery
from outbound.types import BY_SOURCE
from readmodels.models import AgentUnread, Conversation, DirectoryEntry, TimelineMessage
from readmodels.present import attachment_rows, rfc3339
from readmodels.projections import fold_conversation

_MESSAGE_EVENTS = (MessageSent, MessageEdited, MessageMarkedAsRead)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def encode(event_id: uuid.UUID, type_: str, recorded_at: dt.datetime, data: dict[str, Any]) -> str:
    """The body every attempt sends: ``{"id", "type", "timestamp", "data"}``."""
    body = {"id": str(event_id), "type": type_, "timestamp": rfc3339(recorded_at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class WebhookProcessManager:
    """Consumer ``webhooks``: one outbox row per (event, endpoint)."""

    name = "webhooks"
    # CustomerRegistered sends nothing; it keeps customers' names current within a
    # batch. Messages keep the conversation as of each workflow event.
    event_types = frozenset({*BY_SOURCE, "CustomerRegistered"})

    def prepare(self, batch: Batch) -> None:
        if not batch.events:
            return
        unit = batch.unit
        assert unit is not None
        events = [r.event for r in batch.events]
        unit.want(TimelineMessage, (e.message_id for e in events if isinstance(e, MessageEdited | MessageMarkedAsRead)))
        unit.want(DirectoryEntry, {e.customer_id for e in events})  # type: ignore[attr-defined]
        unit.want(Conversation, {e.customer_id for e in events})  # type: ignore[attr-defined]
        unit.want(AgentUnread, (e.message_id for e in events if isinstance(e, MessageMarkedAsRead)))

    def handle(self, batch: Batch) -> int:
        if not any(r.event_type in BY_SOURCE for r in batch.events):
            return 0
        endpoints = list(WebhookEndpoint.objects.filter(disabled_at__isnull=True).values("id", "events", "created_at"))
        if not endpoints:
            return 0
        unit = batch.unit
        assert unit is not None
        state = _State(unit)
        now = _now()
        give_up_at = now + dt.timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS)
        queued = 0
        for r in batch.events:
            row = state.apply(r.event, r.tx, r.position, r)
            kind = BY_SOURCE.get(r.event_type)
            if kind is None or row is None:
                continue
            wanted = [ep for ep in endpoints if kind.name in ep["events"] and ep["created_at"] <= r.recorded_at]
            if not wanted:
                continue
            customer_id = r.event.customer_id  # type: ignore[attr-defined]
            body = encode(r.event_id, kind.name, r.recorded_at, kind.build(r.event, row, state.names(customer_id)))
            for ep in wanted:
                unit.add(WebhookDelivery, {
                    "event_id": r.event_id, "endpoint_id": ep["id"], "customer_id": customer_id,
                    "event_type": kind.name, "body": body, "tx": r.tx, "position": r.position,
                    "created_at": now, "due_at": now, "give_up_at": give_up_at,
                }, unless_exists=("event_id", "endpoint_id"))
                queued += 1
        return queued

    def reset(self) -> None:
        # Deliveries are intent already acted on: a replay must not send history again.
        return None

    async def after_commit(self, effects: Any) -> None:
        if effects:
            wake_delivery()


class _State:
    """Messages and customers as of the event being handled: the read models'
    rows at the batch's start, with the batch's events applied in order."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.messages: dict[uuid.UUID, Row] = {}
        self.customers: dict[uuid.UUID, Row] = {}
        self.conversations: dict[uuid.UUID, Row] = {}
        self.unread: set[uuid.UUID] = set()  # customers' messages sent in this batch, unread by agents
        self.read: set[uuid.UUID] = set()  # ... and those agents read in it

    def _message(self, message_id: uuid.UUID) -> Row | None:
        return self.messages.get(message_id) or self.unit.get(TimelineMessage, message_id)

    def _customer(self, customer_id: uuid.UUID) -> Row | None:
        return self.customers.get(customer_id) or self.unit.get(DirectoryEntry, customer_id)

    def names(self, customer_id: uuid.UUID) -> dict[str, str]:
        row = self._customer(customer_id)
        return {str(customer_id): row["name"]} if row else {}

    def _conversation(self, customer_id: uuid.UUID) -> Row | None:
        return self.conversations.get(customer_id) or self.unit.get(Conversation, customer_id)

    def _follow_conversation(self, r: Any) -> Row | None:
        """The conversation row after ``r`` (as readmodels.projections folds it);
        returned for workflow events and notes, the ones it is announced for."""
        e = r.event
        conv = fold_conversation(self._conversation(e.customer_id), r, newly_unread=self._newly_unread,
                                 was_unread=self._was_unread)
        if conv is None:
            return None
        conv = {**conv, "tx": r.tx, "position": r.position}
        self.conversations[e.customer_id] = conv
        return conv if r.event_type in WORKFLOW_EVENT_TYPES else None

    def _newly_unread(self, r: Any) -> bool:
        self.unread.add(r.event.message_id)
        return True

    def _was_unread(self, r: Any) -> bool:
        message_id = r.event.message_id
        unread = message_id in self.unread or (
            message_id not in self.read and self.unit.get(AgentUnread, message_id) is not None)
        if unread:
            self.unread.discard(message_id)
            self.read.add(message_id)
        return unread

    def apply(self, e: Any, tx: int, position: int, recorded: Any = None) -> Row | None:
        """Apply one event; the row it is about, as of it (None: unknown)."""
        if isinstance(e, NoteAdded):  # the note is its own data; the row gives its position
            return {"tx": tx, "position": position}
        if recorded is not None and (isinstance(e, _MESSAGE_EVENTS) or recorded.event_type in WORKFLOW_EVENT_TYPES):
            conversation = self._follow_conversation(recorded)
            if not isinstance(e, _MESSAGE_EVENTS):
                return conversation
        if isinstance(e, MessageSent):
            row: Row | None = {
                "message_id": e.message_id, "customer_id": e.customer_id, "sender_kind": e.sender_kind,
                "sender_id": e.sender_id, "sender_name": e.sender_name, "body": e.body, "sent_at": e.sent_at,
                "edited_at": None, "read_at": None, "attachments": attachment_rows(e.attachments),
            }
        elif isinstance(e, MessageEdited | MessageMarkedAsRead):
            row = self._message(e.message_id)
            if row is not None:
                row = {**row, "body": e.body, "edited_at": e.edited_at} if isinstance(e, MessageEdited) else {
                    **row, "read_at": e.read_at}
        elif isinstance(e, CustomerRegistered):
            row = {"customer_id": e.customer_id, "name": e.name, "email": e.email, "phone": e.phone,
                   "external_id": e.external_id}
        elif isinstance(e, ContactDetailsChanged):
            row = self._customer(e.customer_id)
            if row is not None:
                row = {**row, "name": e.name, "email": e.email, "phone": e.phone}
        else:
            return None
        if row is None:
            return None
        row = {**row, "tx": tx, "position": position}
        if isinstance(e, _MESSAGE_EVENTS):
            self.messages[e.message_id] = row
        else:
            self.customers[e.customer_id] = row
        return row
