"""The webhook event types: which log event each one comes from, and its ``data``.

One entry per type in ``TYPES``. ``data`` is the object the API shows for
the thing the event is about (readmodels.present), as of that event: the
process manager (outbound.process_manager) keeps the state the batch's
earlier events made and hands it to the builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventstore.tables import Row
from readmodels.present import present_message

#: (the event, the message or customer row as of the event, customer id -> name) -> data
Build = Callable[[Any, Row, dict[str, str]], dict[str, Any]]


def message_data(event: Any, row: Row, names: dict[str, str]) -> dict[str, Any]:
    return present_message(
        message_id=row["message_id"], customer_id=row["customer_id"], sender_kind=row["sender_kind"],
        sender_id=row["sender_id"], sender_name=row["sender_name"], body=row["body"], sent_at=row["sent_at"],
        edited_at=row["edited_at"], read_at=row["read_at"], position=row["position"], names=names,
    )


def customer_data(event: Any, row: Row, names: dict[str, str]) -> dict[str, Any]:
    return {
        "customer_id": str(row["customer_id"]), "name": row["name"], "email": row["email"],
        "phone": row["phone"], "external_id": row["external_id"],
    }


@dataclass(frozen=True)
class WebhookType:
    name: str  # what endpoints subscribe to and receivers see as ``type``
    source: str  # the log's event type
    build: Build


TYPES: dict[str, WebhookType] = {
    t.name: t
    for t in (
        WebhookType("message.created", "MessageSent", message_data),
        WebhookType("message.edited", "MessageEdited", message_data),
        WebhookType("message.read", "MessageMarkedAsRead", message_data),
        WebhookType("customer.updated", "ContactDetailsChanged", customer_data),
    )
}

#: The log's event type -> its webhook type.
BY_SOURCE: dict[str, WebhookType] = {t.source: t for t in TYPES.values()}
