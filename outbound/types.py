"""The webhook event types: which log event each one comes from, and its ``data``.

One entry per (log event, webhook type) in ``ALL``. ``data`` is the object the API shows for
the thing the event is about (readmodels.present), as of that event: the
process manager (outbound.process_manager) keeps the state the batch's
earlier events made and hands it to the builder.
"""

from __future__ import annotations

import types as _types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conversations.events import WORKFLOW_EVENT_TYPES
from eventstore.tables import Row
from readmodels.present import present_conversation, present_message, present_note

#: (the event, the message or customer row as of the event, customer id -> name) -> data
Build = Callable[[Any, Row, dict[str, str]], dict[str, Any]]


def message_data(event: Any, row: Row, names: dict[str, str]) -> dict[str, Any]:
    return present_message(
        message_id=row["message_id"], customer_id=row["customer_id"], sender_kind=row["sender_kind"],
        sender_id=row["sender_id"], sender_name=row["sender_name"], body=row["body"], sent_at=row["sent_at"],
        edited_at=row["edited_at"], read_at=row["read_at"], position=row["position"], names=names,
        attachments=row["attachments"],
    )


def customer_data(event: Any, row: Row, names: dict[str, str]) -> dict[str, Any]:
    return {
        "customer_id": str(row["customer_id"]), "name": row["name"], "email": row["email"],
        "phone": row["phone"], "external_id": row["external_id"],
    }


def conversation_data(event: Any, row: Row, names: dict[str, str]) -> dict[str, Any]:
    """The agents' conversation object (status, assignee, snooze, first response) as of the event."""
    return present_conversation(_types.SimpleNamespace(**row), names)  # type: ignore[arg-type]


def note_data(event: Any, row: Row, names: dict[str, str]) -> dict[str, Any]:
    return present_note(
        note_id=event.note_id, customer_id=event.customer_id, author_id=event.author_id,
        author_name=event.author_name, body=event.body, created_at=event.added_at, position=row["position"],
    )


@dataclass(frozen=True)
class WebhookType:
    name: str  # what endpoints subscribe to and receivers see as ``type``
    source: str  # the log's event type
    build: Build


#: Every (log event type -> webhook type) pairing; ``conversation.updated``
#: comes from every workflow event but the breach, which has a type of its own.
ALL: tuple[WebhookType, ...] = (
    WebhookType("message.created", "MessageSent", message_data),
    WebhookType("message.edited", "MessageEdited", message_data),
    WebhookType("message.read", "MessageMarkedAsRead", message_data),
    WebhookType("customer.updated", "ContactDetailsChanged", customer_data),
    WebhookType("note.created", "NoteAdded", note_data),
    WebhookType("conversation.sla_breached", "FirstResponseSlaBreached", conversation_data),
    *(WebhookType("conversation.updated", source, conversation_data)
      for source in sorted(WORKFLOW_EVENT_TYPES - {"FirstResponseSlaBreached"})),
)

#: The types an endpoint may subscribe to, by name.
TYPES: dict[str, WebhookType] = {t.name: t for t in ALL}

#: The log's event type -> its webhook type.
BY_SOURCE: dict[str, WebhookType] = {t.source: t for t in ALL}
