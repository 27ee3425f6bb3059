"""The webhook event types: which log event each one comes from, and its ``data``.

One entry per (log event, webhook type) in ``ALL``. ``data`` is the object the API shows for
the thing the event is about, as of that event: the rows the read models
left as of it (readmodels.asof), which the process manager
(outbound.process_manager) hands to the builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conversations.events import WORKFLOW_EVENT_TYPES
from readmodels.asof import Rows

#: (the event, the rows the read models left as of it) -> data, or None: nothing to announce
Build = Callable[[Any, Rows], dict[str, Any] | None]


def message_data(event: Any, rows: Rows) -> dict[str, Any] | None:
    return rows.get("message")


def customer_data(event: Any, rows: Rows) -> dict[str, Any] | None:
    customer = rows.get("customer")
    if customer is None:
        return None
    return {key: customer[key] for key in ("customer_id", "name", "email", "phone", "external_id")}


def conversation_data(event: Any, rows: Rows) -> dict[str, Any] | None:
    """The agents' conversation object (status, assignee, snooze, first response) as of the event."""
    return rows.get("conversation")


def erased_data(event: Any, rows: Rows) -> dict[str, Any] | None:
    """Only the id: everything else about the customer is gone."""
    return {"customer_id": str(event.customer_id), "reason": event.reason}


def note_data(event: Any, rows: Rows) -> dict[str, Any] | None:
    return rows.get("note")


@dataclass(frozen=True)
class WebhookType:
    name: str  # what endpoints subscribe to and receivers see as ``type``
    source: str  # the log's event type
    build: Build


#: Every (log event type -> webhook type) pairing; ``conversation.updated``
#: comes from every workflow event but the breach and the rating, which have types of their own.
ALL: tuple[WebhookType, ...] = (
    WebhookType("message.created", "MessageSent", message_data),
    WebhookType("message.edited", "MessageEdited", message_data),
    WebhookType("message.read", "MessageMarkedAsRead", message_data),
    WebhookType("customer.updated", "ContactDetailsChanged", customer_data),
    WebhookType("customer.erased", "CustomerErased", erased_data),
    WebhookType("note.created", "NoteAdded", note_data),
    WebhookType("conversation.sla_breached", "FirstResponseSlaBreached", conversation_data),
    WebhookType("conversation.rated", "ConversationRated", conversation_data),
    *(WebhookType("conversation.updated", source, conversation_data)
      for source in sorted(WORKFLOW_EVENT_TYPES - {"FirstResponseSlaBreached", "ConversationRated"})),
)

#: The types an endpoint may subscribe to, by name.
TYPES: dict[str, WebhookType] = {t.name: t for t in ALL}

#: The log's event type -> its webhook type.
BY_SOURCE: dict[str, WebhookType] = {t.source: t for t in ALL}
