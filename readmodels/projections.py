"""The read-model consumers.

They run together in one consumer group (``PIPELINE``, composed in
project/bootstrap.py): every batch of the log is read once and applied by
all of them in one transaction with the group's checkpoint, so a batch is
either wholly applied or wholly redone, and every read model is current to
the same position.

Each works on the batch's unit of work (eventstore.unit): ``prepare`` says
which rows it needs, ``handle`` changes them in memory, and the unit reads
and writes for all of them at once. So a batch costs a few statements
whatever its size, and a rebuild is bounded by the database, not by round
trips.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from django.db import models

from chat.events import MessageEdited, MessageMarkedAsRead, MessageSent, SenderKind
from conversations.events import (
    WORKFLOW_EVENT_TYPES,
    ConversationAssigned,
    ConversationReopened,
    ConversationSnoozed,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
    FirstResponseSlaBreached,
    NoteAdded,
)
from customers.events import ContactDetailsChanged, CustomerRegistered, EmailUnsubscribed
from eventstore.events import Cursor, RecordedEvent
from eventstore.reading import Batch
from eventstore.unit import Unit
from readmodels.fulltext import indexable
from readmodels.models import (
    AgentUnread,
    Badge,
    BadgeChange,
    BadgeUnread,
    Conversation,
    DirectoryEntry,
    SearchEntry,
    TimelineMessage,
    TimelineNote,
)
from readmodels.present import attachment_rows, preview_text

PREVIEW_CHARS = 200

#: The checkpoint of the consumer group the projections run in: every read
#: model is current to this position (the composition root builds the group
#: under this name).
PIPELINE = "pipeline"


class Projection(ABC):
    """Shared shape of the read-model consumers (see eventstore.runner.Consumer)."""

    name: str
    event_types: frozenset[str]
    tables: Sequence[type[models.Model]] = ()

    def prepare(self, batch: Batch) -> None:
        """Say which rows the batch needs (before the unit loads them)."""
        if batch.events:
            assert batch.unit is not None
            self.want(batch.events, batch.unit)

    def handle(self, batch: Batch) -> None:
        """Apply the batch to the loaded rows (inside the runner's transaction)."""
        if batch.events:
            assert batch.unit is not None
            self.apply(batch.events, batch.unit)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        """The rows ``apply`` reads, by key (none by default)."""

    @abstractmethod
    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        """Apply this projection's events of a batch (never empty)."""

    def reset(self) -> None:
        for table in self.tables:
            table._default_manager.all().delete()

    async def after_commit(self, effects: Any) -> None:
        return None


def registration_origin(actor: str) -> str:
    """How a customer came to Parley, from the actor that registered them:
    "form" (the visitor form), "api" (the host application's POST
    /api/v1/customers), "webhook" (an inbound webhook), or "" (anything else)."""
    if actor == "visitor":
        return "form"
    if actor == "integration":
        return "api"
    if actor.startswith("inbound:"):
        return "webhook"
    return ""


class DirectoryProjection(Projection):
    name = "directory"
    event_types = frozenset({"CustomerRegistered", "ContactDetailsChanged", "EmailUnsubscribed"})
    tables = (DirectoryEntry,)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        unit.want(DirectoryEntry, (r.event.customer_id for r in events if not isinstance(r.event, CustomerRegistered)))  # type: ignore[attr-defined]

    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        for r in events:
            e = r.event
            if isinstance(e, CustomerRegistered):
                unit.save(DirectoryEntry, {
                    "customer_id": e.customer_id, "name": e.name, "email": e.email, "phone": e.phone,
                    "external_id": e.external_id, "origin": registration_origin(r.metadata.actor), "unsubscribed": "",
                    "tx": r.tx, "position": r.position,
                })
            elif isinstance(e, ContactDetailsChanged):
                row = unit.get(DirectoryEntry, e.customer_id)
                if row is not None:
                    unit.save(DirectoryEntry, {**row, "name": e.name, "email": e.email, "phone": e.phone, "tx": r.tx, "position": r.position})
            elif isinstance(e, EmailUnsubscribed):
                row = unit.get(DirectoryEntry, e.customer_id)
                if row is not None:
                    addresses = set(row["unsubscribed"].split()) | {e.email.lower()}
                    unit.save(DirectoryEntry, {**row, "unsubscribed": "\n".join(sorted(addresses)), "tx": r.tx, "position": r.position})


class TimelineProjection(Projection):
    name = "timeline"
    event_types = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead"})
    tables = (TimelineMessage,)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        # A MessageSent starts its row; only later events' rows need loading.
        unit.want(TimelineMessage, (r.event.message_id for r in events if not isinstance(r.event, MessageSent)))  # type: ignore[attr-defined]

    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        for r in events:
            e = r.event
            if isinstance(e, MessageSent):
                unit.save(TimelineMessage, {
                    "message_id": e.message_id, "customer_id": e.customer_id, "sender_kind": e.sender_kind,
                    "sender_id": e.sender_id, "sender_name": e.sender_name, "body": e.body, "sent_at": e.sent_at,
                    "edited_at": None, "read_at": None, "attachments": attachment_rows(e.attachments),
                    "tx": r.tx, "position": r.position,
                })
                continue
            row = unit.get(TimelineMessage, e.message_id)  # type: ignore[attr-defined]
            if row is None:
                continue  # cannot happen: a stream starts with MessageSent
            if isinstance(e, MessageEdited):
                row = {**row, "body": e.body, "edited_at": e.edited_at}
            elif isinstance(e, MessageMarkedAsRead):
                row = {**row, "read_at": e.read_at}
            unit.save(TimelineMessage, {**row, "tx": r.tx, "position": r.position})


def last_message_summary(e: MessageSent) -> dict[str, Any]:
    return {
        "message_id": str(e.message_id),
        "sender": {"kind": e.sender_kind, "id": e.sender_id, "name": e.sender_name},
        "preview": preview_text(e.body, e.attachments)[:PREVIEW_CHARS],
        "sent_at": e.sent_at.isoformat(),
        "edited": False,
    }


def _mark_unread(unit: Unit, model: type[AgentUnread] | type[BadgeUnread], r: RecordedEvent) -> bool:
    """Add the message to an unread set; True if it was not there (so a count goes up once)."""
    e = r.event
    if unit.get(model, e.message_id) is not None:  # type: ignore[attr-defined]
        return False
    unit.save(model, {"message_id": e.message_id, "customer_id": e.customer_id})  # type: ignore[attr-defined]
    return True


def _mark_read(unit: Unit, model: type[AgentUnread] | type[BadgeUnread], r: RecordedEvent) -> bool:
    """Take the message out of an unread set; True if it was there (so a count goes down once)."""
    if unit.get(model, r.event.message_id) is None:  # type: ignore[attr-defined]
        return False
    unit.remove(model, r.event.message_id)  # type: ignore[attr-defined]
    return True


class ConversationsProjection(Projection):
    """Agents' conversation list: last message, unread_for_agents, awaiting_reply, and the workflow."""

    name = "conversations"
    event_types = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead"}) | WORKFLOW_EVENT_TYPES
    tables = (Conversation, AgentUnread)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        unit.want(Conversation, (r.event.customer_id for r in events))  # type: ignore[attr-defined]
        # A new message is never in the unread set yet; a read one may be.
        unit.want(AgentUnread, (r.event.message_id for r in events if isinstance(r.event, MessageMarkedAsRead)))  # type: ignore[attr-defined]

    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        for r in events:
            conv = fold_conversation(
                unit.get(Conversation, r.event.customer_id), r,  # type: ignore[attr-defined]
                newly_unread=lambda r: _mark_unread(unit, AgentUnread, r),
                was_unread=lambda r: _mark_read(unit, AgentUnread, r),
            )
            if conv is not None:  # None cannot happen: a conversation starts with a message or workflow event
                unit.save(Conversation, {**conv, "tx": r.tx, "position": r.position})


def fold_conversation(
    conv: dict[str, Any] | None,
    r: RecordedEvent,
    *,
    newly_unread: Callable[[RecordedEvent], bool],
    was_unread: Callable[[RecordedEvent], bool],
) -> dict[str, Any] | None:
    """A conversation row (as the agents' list shows it) after one event; None
    for an event about a conversation not started yet.

    The unread count is kept by the caller's own set of agent-unread
    messages: ``newly_unread(r)`` records the customer's message ``r`` and
    says whether it was not counted yet, ``was_unread(r)`` takes the message
    an agent's read ``r`` names out and says whether it was counted. (The
    projection keeps the set in a table; the webhook process manager, which
    folds a batch ahead of the projection, in memory over that table.)
    """
    e: Any = r.event
    if r.event_type in WORKFLOW_EVENT_TYPES:
        return apply_workflow(conv, r)
    if isinstance(e, MessageSent):
        if conv is None:
            conv = {**WORKFLOW_DEFAULTS, "customer_id": e.customer_id, "unread_for_agents": 0}
        conv = {
            **conv, "last_message": last_message_summary(e), "last_activity_at": e.sent_at,
            "awaiting_reply": e.sender_kind == SenderKind.CUSTOMER,
        }
        if e.sender_kind == SenderKind.CUSTOMER and newly_unread(r):
            conv["unread_for_agents"] += 1
        return conv
    if conv is None:
        return None
    if isinstance(e, MessageEdited):
        if (conv["last_message"] or {}).get("message_id") == str(e.message_id):
            return {**conv, "last_message": {**conv["last_message"], "preview": e.body[:PREVIEW_CHARS], "edited": True}}
    elif isinstance(e, MessageMarkedAsRead):
        if e.reader_kind == SenderKind.AGENT and was_unread(r):
            return {**conv, "unread_for_agents": max(0, conv["unread_for_agents"] - 1)}
    return conv


#: A new conversation row's workflow columns.
WORKFLOW_DEFAULTS: dict[str, Any] = {
    "status": "open", "assignee_id": None, "assignee_name": "", "snoozed_until": None,
    "first_response_due_at": None, "sla_breached": False,
}


def apply_workflow(conv: dict[str, Any] | None, r: RecordedEvent) -> dict[str, Any]:
    """A conversation row after a workflow event (a row is started by one if no message came first)."""
    e: Any = r.event
    if conv is None:
        at = e.since if isinstance(e, FirstResponseClockStarted) else e.at
        conv = {**WORKFLOW_DEFAULTS, "customer_id": e.customer_id, "last_message": None, "unread_for_agents": 0,
                "awaiting_reply": False, "last_activity_at": at}
    if isinstance(e, ConversationAssigned):
        return {**conv, "assignee_id": e.assignee_id, "assignee_name": e.assignee_name}
    if isinstance(e, ConversationStatusChanged):
        return {**conv, "status": e.status, "snoozed_until": None}
    if isinstance(e, ConversationSnoozed):
        return {**conv, "status": "snoozed", "snoozed_until": e.until}
    if isinstance(e, ConversationReopened):
        return {**conv, "status": "open", "snoozed_until": None}
    if isinstance(e, FirstResponseClockStarted):
        return {**conv, "first_response_due_at": e.due_at, "sla_breached": False}
    if isinstance(e, FirstResponseClockStopped):
        return {**conv, "first_response_due_at": None, "sla_breached": False}
    if isinstance(e, FirstResponseSlaBreached):
        return {**conv, "sla_breached": True}
    raise TypeError(f"not a workflow event: {e!r}")


class NotesProjection(Projection):
    """Private notes, per conversation, for agents only."""

    name = "notes"
    event_types = frozenset({"NoteAdded"})
    tables = (TimelineNote,)

    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        for r in events:
            e = r.event
            assert isinstance(e, NoteAdded)
            unit.save(TimelineNote, {
                "note_id": e.note_id, "customer_id": e.customer_id, "author_id": e.author_id,
                "author_name": e.author_name, "body": e.body, "created_at": e.added_at, "tx": r.tx, "position": r.position,
            })


def moves_badge(r: RecordedEvent) -> bool:
    """Whether the event can change the customer's badge: an agent's message, a read by the customer."""
    e = r.event
    if isinstance(e, MessageSent):
        return e.sender_kind == SenderKind.AGENT
    return isinstance(e, MessageMarkedAsRead) and e.reader_kind == SenderKind.CUSTOMER


class BadgeProjection(Projection):
    """Unread agent messages per customer, with its history of values."""

    name = "badge"
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead"})
    tables = (Badge, BadgeUnread, BadgeChange)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        relevant = [r for r in events if moves_badge(r)]
        unit.want(Badge, (r.event.customer_id for r in relevant))  # type: ignore[attr-defined]
        unit.want(BadgeUnread, (r.event.message_id for r in relevant if isinstance(r.event, MessageMarkedAsRead)))  # type: ignore[attr-defined]

    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        for r in events:
            if not moves_badge(r):
                continue
            if isinstance(r.event, MessageSent):
                if not _mark_unread(unit, BadgeUnread, r):
                    continue
                delta = 1
            else:
                if not _mark_read(unit, BadgeUnread, r):
                    continue
                delta = -1
            customer_id = r.event.customer_id  # type: ignore[attr-defined]
            badge = unit.get(Badge, customer_id) or {"customer_id": customer_id, "unread": 0}
            unread = max(0, badge["unread"] + delta)
            unit.save(Badge, {**badge, "unread": unread, "tx": r.tx, "position": r.position})
            unit.add(BadgeChange, {"customer_id": customer_id, "unread": unread, "tx": r.tx, "position": r.position})


def badges_after(unit: Unit, events: Sequence[RecordedEvent]) -> dict[Cursor, int]:
    """The customer's badge right after each of these events, in a pipeline batch.

    The batch's own changes are in the unit (the badge projection handled it
    first); an event that did not move the badge is answered from the
    stored history.
    """
    from readmodels.selectors import badges_at

    changed = {Cursor(int(c["tx"]), int(c["position"])): int(c["unread"]) for c in unit.added(BadgeChange)}
    missing = [(r.event.customer_id, r.cursor) for r in events if r.cursor not in changed]  # type: ignore[attr-defined]
    if missing:
        changed.update(badges_at(missing))
    return changed


def message_entry_key(message_id: uuid.UUID) -> str:
    return f"message:{message_id}"


def customer_entry_key(customer_id: uuid.UUID) -> str:
    return f"customer:{customer_id}"


def customer_text(name: str, email: str) -> str:
    """What a customer is found by: their name and email address."""
    return f"{name} \u00b7 {email}" if email else name


class SearchProjection(Projection):
    """The full-text search index (readmodels.fulltext): a row per message
    with its current body, a row per customer with their name and email.

    Every event carries the whole text it leaves, so rows are written
    without being read: an edit replaces the message's text, a change of
    contact details the customer's. Private notes are not indexed: search
    answers customers too, and notes must never reach them.
    """

    name = "search"
    event_types = frozenset({"MessageSent", "MessageEdited", "CustomerRegistered", "ContactDetailsChanged"})
    tables = (SearchEntry,)

    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        for r in events:
            e = r.event
            if isinstance(e, MessageSent | MessageEdited):
                row = {"key": message_entry_key(e.message_id), "kind": "message", "customer_id": e.customer_id,
                       "message_id": e.message_id, "text": indexable(e.body)}
            elif isinstance(e, CustomerRegistered | ContactDetailsChanged):
                row = {"key": customer_entry_key(e.customer_id), "kind": "customer", "customer_id": e.customer_id,
                       "message_id": None, "text": indexable(customer_text(e.name, e.email))}
            else:
                continue
            unit.save(SearchEntry, {**row, "tx": r.tx, "position": r.position})


def all_projections() -> list[Projection]:
    return [
        DirectoryProjection(), TimelineProjection(), ConversationsProjection(), BadgeProjection(), NotesProjection(),
        SearchProjection(),
    ]
