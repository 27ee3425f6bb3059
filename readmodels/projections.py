"""The read-model consumers. Each applies a batch in memory and writes it
back with a few bulk statements, so a rebuild is bounded by the database
rather than by one round trip per event.

They run together in one consumer group (``PIPELINE``, composed in
project/bootstrap.py): every batch of the log is read once and applied by
all of them in one transaction with the group's checkpoint, so a batch is
either wholly applied or wholly redone, and every read model is current to
the same position.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import models

from chat.domain import MessageEdited, MessageMarkedAsRead, MessageSent, SenderKind
from customers.events import ContactDetailsChanged, CustomerRegistered
from eventstore.events import RecordedEvent
from eventstore.store import Batch
from readmodels.models import (
    AgentUnread,
    Badge,
    BadgeChange,
    BadgeUnread,
    Conversation,
    DirectoryEntry,
    TimelineMessage,
)

PREVIEW_CHARS = 200

#: The checkpoint of the consumer group the projections run in: every read
#: model is current to this position (the composition root builds the group
#: under this name).
PIPELINE = "pipeline"


def _upsert(model: type[models.Model], rows: Iterable[models.Model], fields: list[str]) -> None:
    rows = list(rows)
    if rows:
        pk = model._meta.pk.name  # type: ignore[union-attr]
        model._default_manager.bulk_create(rows, update_conflicts=True, unique_fields=[pk], update_fields=fields)


def _load(model: type[models.Model], ids: Iterable[Any]) -> dict[Any, Any]:
    ids = set(ids)
    return {row.pk: row for row in model._default_manager.filter(pk__in=ids)} if ids else {}


class Projection(ABC):
    """Shared shape of the read-model consumers (see eventstore.runner.Consumer)."""

    name: str
    event_types: frozenset[str]
    depends_on: Sequence[str] = ()
    tables: Sequence[type[models.Model]] = ()

    def handle(self, batch: Batch) -> None:
        """Apply a batch (inside the runner's transaction)."""
        if batch.events:
            self.apply(batch.events)

    @abstractmethod
    def apply(self, events: Sequence[RecordedEvent]) -> None:
        """Apply this projection's events of a batch (never empty)."""

    def reset(self) -> None:
        for table in self.tables:
            table._default_manager.all().delete()

    async def after_commit(self, effects: Any) -> None:
        return None


class DirectoryProjection(Projection):
    name = "directory"
    event_types = frozenset({"CustomerRegistered", "ContactDetailsChanged"})
    tables = (DirectoryEntry,)

    def apply(self, events: Sequence[RecordedEvent]) -> None:
        rows = _load(DirectoryEntry, (e.event.customer_id for e in events))  # type: ignore[attr-defined]
        for r in events:
            e = r.event
            if isinstance(e, CustomerRegistered):
                rows[e.customer_id] = DirectoryEntry(
                    customer_id=e.customer_id, name=e.name, email=e.email, phone=e.phone,
                    external_id=e.external_id, tx=r.tx, position=r.position,
                )
            elif isinstance(e, ContactDetailsChanged) and e.customer_id in rows:
                row = rows[e.customer_id]
                row.name, row.email, row.phone, row.tx, row.position = e.name, e.email, e.phone, r.tx, r.position
        _upsert(DirectoryEntry, rows.values(), ["name", "email", "phone", "external_id", "tx", "position"])


class TimelineProjection(Projection):
    name = "timeline"
    event_types = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead"})
    tables = (TimelineMessage,)

    def apply(self, events: Sequence[RecordedEvent]) -> None:
        # A MessageSent starts its row; only later events' rows need loading.
        rows = _load(TimelineMessage, (e.event.message_id for e in events if not isinstance(e.event, MessageSent)))  # type: ignore[attr-defined]
        for r in events:
            e = r.event
            if isinstance(e, MessageSent):
                rows[e.message_id] = TimelineMessage(
                    message_id=e.message_id, customer_id=e.customer_id, sender_kind=e.sender_kind,
                    sender_id=e.sender_id, sender_name=e.sender_name, body=e.body, sent_at=e.sent_at,
                    tx=r.tx, position=r.position,
                )
                continue
            row = rows.get(e.message_id)  # type: ignore[attr-defined]
            if row is None:
                continue  # cannot happen: a stream starts with MessageSent
            if isinstance(e, MessageEdited):
                row.body, row.edited_at = e.body, e.edited_at
            elif isinstance(e, MessageMarkedAsRead):
                row.read_at = e.read_at
            row.tx, row.position = r.tx, r.position
        _upsert(TimelineMessage, rows.values(), ["body", "edited_at", "read_at", "tx", "position"])


def last_message_summary(e: MessageSent) -> dict[str, Any]:
    return {
        "message_id": str(e.message_id),
        "sender": {"kind": e.sender_kind, "id": e.sender_id, "name": e.sender_name},
        "preview": e.body[:PREVIEW_CHARS],
        "sent_at": e.sent_at.isoformat(),
        "edited": False,
    }


class UnreadSet:
    """The unread-message rows a batch touches, changed in memory, written once.

    A count goes up only when ``add`` really adds and down only when
    ``discard`` really removes, so repeats can never count twice.
    """

    def __init__(self, model: type[AgentUnread] | type[BadgeUnread], events: Sequence[RecordedEvent]) -> None:
        self.model = model
        ids = [e.event.message_id for e in events]  # type: ignore[attr-defined]
        self._present = set(model._default_manager.filter(message_id__in=ids).values_list("message_id", flat=True))
        self._added: dict[uuid.UUID, uuid.UUID] = {}
        self._removed: set[uuid.UUID] = set()

    def add(self, message_id: uuid.UUID, customer_id: uuid.UUID) -> bool:
        if message_id in self._present:
            return False
        self._present.add(message_id)
        self._added[message_id] = customer_id
        return True

    def discard(self, message_id: uuid.UUID) -> bool:
        if message_id not in self._present:
            return False
        self._present.discard(message_id)
        if self._added.pop(message_id, None) is None:
            self._removed.add(message_id)
        return True

    def save(self) -> None:
        rows: list[Any] = [self.model(message_id=m, customer_id=c) for m, c in self._added.items()]
        self.model._default_manager.bulk_create(rows, ignore_conflicts=True)
        if self._removed:
            self.model._default_manager.filter(message_id__in=self._removed).delete()


class ConversationsProjection(Projection):
    """Agents' conversation list: last message, unread_for_agents, awaiting_reply."""

    name = "conversations"
    event_types = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead"})
    tables = (Conversation, AgentUnread)

    def apply(self, events: Sequence[RecordedEvent]) -> None:
        convs = _load(Conversation, (e.event.customer_id for e in events))  # type: ignore[attr-defined]
        unread = UnreadSet(AgentUnread, events)
        changed: set[uuid.UUID] = set()
        for r in events:
            e = r.event
            if isinstance(e, MessageSent):
                conv = convs.get(e.customer_id)
                if conv is None:
                    conv = convs[e.customer_id] = Conversation(customer_id=e.customer_id, unread_for_agents=0)
                conv.last_message = last_message_summary(e)
                conv.last_activity_at = e.sent_at
                conv.awaiting_reply = e.sender_kind == SenderKind.CUSTOMER
                if e.sender_kind == SenderKind.CUSTOMER and unread.add(e.message_id, e.customer_id):
                    conv.unread_for_agents += 1
            elif isinstance(e, MessageEdited):
                conv = convs[e.customer_id]
                if conv.last_message.get("message_id") == str(e.message_id):
                    conv.last_message = {**conv.last_message, "preview": e.body[:PREVIEW_CHARS], "edited": True}
            elif isinstance(e, MessageMarkedAsRead):
                conv = convs[e.customer_id]
                if e.reader_kind == SenderKind.AGENT and unread.discard(e.message_id):
                    conv.unread_for_agents = max(0, conv.unread_for_agents - 1)
            else:
                continue
            conv.tx, conv.position = r.tx, r.position
            changed.add(conv.customer_id)
        unread.save()
        _upsert(
            Conversation,
            (convs[c] for c in changed),
            ["last_message", "unread_for_agents", "awaiting_reply", "last_activity_at", "tx", "position"],
        )


class BadgeProjection(Projection):
    """Unread agent messages per customer, with its history of values."""

    name = "badge"
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead"})
    tables = (Badge, BadgeUnread, BadgeChange)

    def apply(self, events: Sequence[RecordedEvent]) -> None:
        events = [r for r in events if _moves_badge(r)]
        if not events:
            return
        badges = _load(Badge, (e.event.customer_id for e in events))  # type: ignore[attr-defined]
        unread = UnreadSet(BadgeUnread, events)
        history: list[BadgeChange] = []
        for r in events:
            e = r.event
            if isinstance(e, MessageSent) and e.sender_kind == SenderKind.AGENT:
                if not unread.add(e.message_id, e.customer_id):
                    continue
                delta = 1
            elif isinstance(e, MessageMarkedAsRead) and e.reader_kind == SenderKind.CUSTOMER:
                if not unread.discard(e.message_id):
                    continue
                delta = -1
            else:
                continue
            badge = badges.get(e.customer_id)
            if badge is None:
                badge = badges[e.customer_id] = Badge(customer_id=e.customer_id, unread=0)
            badge.unread = max(0, badge.unread + delta)
            badge.tx, badge.position = r.tx, r.position
            history.append(BadgeChange(customer_id=e.customer_id, unread=badge.unread, tx=r.tx, position=r.position))
        unread.save()
        _upsert(Badge, (badges[c] for c in {h.customer_id for h in history}), ["unread", "tx", "position"])
        BadgeChange.objects.bulk_create(history)


def _moves_badge(r: RecordedEvent) -> bool:
    e = r.event
    if isinstance(e, MessageSent):
        return e.sender_kind == SenderKind.AGENT
    return isinstance(e, MessageMarkedAsRead) and e.reader_kind == SenderKind.CUSTOMER


def all_projections() -> list[Projection]:
    return [DirectoryProjection(), TimelineProjection(), ConversationsProjection(), BadgeProjection()]
