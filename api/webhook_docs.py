"""The outbound webhooks as the OpenAPI document describes them: one row per type.

Each row names the component schema of the event's ``data`` (api.schemas) and
says when the event is sent; api.openapi turns the table into the document's
``webhooks`` section and one envelope schema per type (``MessageCreatedEvent``:
``{"id", "type", "timestamp", "data"}``). Adding a webhook type to
outbound.types without a row here fails tests/integration/test_openapi.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookDoc:
    data: str  # the component schema of ``data``
    summary: str
    description: str = ""


WEBHOOKS: dict[str, WebhookDoc] = {
    "message.created": WebhookDoc(
        "Message", "A message was sent",
        "By the customer, an agent or an inbound channel. `data` is the message as the API shows it, as of the send.",
    ),
    "message.edited": WebhookDoc("Message", "A message was edited", "`data` is the message with its new `body`."),
    "message.read": WebhookDoc("Message", "A message was marked read", "`data` is the message with its `read_at`."),
    "conversation.updated": WebhookDoc(
        "Conversation", "A conversation's status, assignee, snooze, labels or first-response timer changed",
        "`data` is the conversation as agents see it, as of the change (without the caller-specific "
        "`marked_unread`).",
    ),
    "conversation.sla_breached": WebhookDoc(
        "Conversation", "A customer waited longer than the first-response target",
        "Once per waiting period, with `PARLEY_FIRST_RESPONSE_SECONDS` set; `data.sla_breached` is true.",
    ),
    "conversation.rated": WebhookDoc(
        "Conversation", "A customer rated a resolved conversation",
        "Once per resolved period; a new rating of the same period replaces the score. `data.rating` holds "
        "`score` (1-5), `comment` and `rated_at`.",
    ),
    "note.created": WebhookDoc("Note", "An agent added a private note", "Notes never reach customers."),
    "customer.erased": WebhookDoc(
        "ErasedCustomer", "A customer was erased (on request or by retention)",
        "Delete your copies of what Parley sent about them. Every delivery about them still queued is deleted; "
        "this one is the last.",
    ),
    "customer.updated": WebhookDoc(
        "WebhookCustomer", "A customer's contact details changed",
        "`data` is the customer's contact details as of the change.",
    ),
}


def event_schema_name(webhook_type: str) -> str:
    """``message.created`` -> ``MessageCreatedEvent``."""
    words = webhook_type.replace(".", "_").split("_")
    return "".join(w.capitalize() for w in words) + "Event"


def operation_id(webhook_type: str) -> str:
    """``message.created`` -> ``onMessageCreated``."""
    return "on" + event_schema_name(webhook_type).removesuffix("Event")
