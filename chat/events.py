"""Chat's published language: the events of a message's stream.

Other contexts (read models, push, real-time) learn what happened in chat
from these and from nothing else of chat's: they never import its
aggregate, commands or handlers. A stored event's type name and fields are
a contract with the log; change them only with an upcaster
(eventstore.events).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from eventstore.events import DomainEvent, Payload, event, upcaster

#: The event types of a message's stream.
MESSAGE_EVENT_TYPES = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead"})


class SenderKind(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    #: Parley itself, for the team (the away reply outside business hours):
    #: from the support side, never an agent's reply.
    SYSTEM = "system"


@dataclass(frozen=True)
class AttachmentRef:
    """A file sent with a message, as the log keeps it: enough to show it
    (name, sniffed type, size, whether a thumbnail exists) without asking
    the attachments context, so the read models are rebuilt from the log alone."""

    attachment_id: uuid.UUID
    name: str
    content_type: str
    size: int
    has_thumbnail: bool


@event("MessageSent", version=2, partitioned_by="customer_id", subject="customer_id",
       personal=("sender_name", "body", "attachments"))
@dataclass(frozen=True)
class MessageSent(DomainEvent):
    message_id: uuid.UUID
    customer_id: uuid.UUID
    sender_kind: str
    sender_id: str
    sender_name: str
    body: str
    #: When Parley accepted the message: what conversations are ordered by.
    sent_at: dt.datetime
    #: When the channel it came through says it was sent (inbound webhooks
    #: only), within a day of ``sent_at``; None otherwise.
    channel_sent_at: dt.datetime | None = None
    #: The files sent with the message, in the sender's order (at most
    #: chat.commands.MAX_ATTACHMENTS). Added without a version step: a payload
    #: written before it has no such key and decodes to the default, no
    #: attachments, which is exactly what those messages had; an upcaster
    #: would only restate the default.
    attachments: tuple[AttachmentRef, ...] = ()


@upcaster("MessageSent", from_version=1)
def _message_sent_v1(payload: Payload) -> Payload:
    """Version 1 had no channel_sent_at (and took an inbound message's
    sent_at from the channel, unbounded; those events keep theirs)."""
    payload["channel_sent_at"] = None
    return payload


@event("MessageEdited", partitioned_by="customer_id", subject="customer_id", personal=("body",))
@dataclass(frozen=True)
class MessageEdited(DomainEvent):
    message_id: uuid.UUID
    customer_id: uuid.UUID
    body: str
    edited_at: dt.datetime


@event("MessageMarkedAsRead", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class MessageMarkedAsRead(DomainEvent):
    message_id: uuid.UUID
    customer_id: uuid.UUID
    reader_kind: str
    reader_id: str
    read_at: dt.datetime


def stream_id(message_id: uuid.UUID) -> str:
    return f"message-{message_id}"
