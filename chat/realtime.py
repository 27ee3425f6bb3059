"""What each logged event looks like to the parties watching it.

One function turns a batch of recorded events into frames for the
customer's devices and for the agents. The live fan-out (chat.fanout)
sends them after commit; a resuming socket (chat.consumers) replays the
same frames from the log. Both call this, so a client sees the same thing
live and after a reconnect.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chat.domain import MessageEdited, MessageMarkedAsRead, MessageSent, SenderKind
from customers.events import ContactDetailsChanged
from eventstore.events import Cursor, RecordedEvent
from readmodels import queries
from readmodels.models import Conversation, TimelineMessage

#: Event types that produce frames.
FRAME_EVENT_TYPES = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead", "ContactDetailsChanged"})

AGENTS_GROUP = "agents"


def customer_group(customer_id: uuid.UUID | str) -> str:
    return f"customer.{customer_id}"


@dataclass
class Envelope:
    """The frames one event produces, by audience, with the event's cursor."""

    cursor: Cursor
    customer_id: uuid.UUID
    to_customer: list[dict[str, Any]] = field(default_factory=list)
    to_agents: list[dict[str, Any]] = field(default_factory=list)

    def group_messages(self) -> list[tuple[str, dict[str, Any]]]:
        """Channel-layer messages: one per group, all frames of the event together,
        so a socket can de-duplicate by event."""
        base = {"type": "parley.event", "tx": self.cursor.tx, "position": self.cursor.position}
        out = []
        if self.to_customer:
            out.append((customer_group(self.customer_id), {**base, "frames": self.to_customer}))
        if self.to_agents:
            out.append((AGENTS_GROUP, {**base, "frames": self.to_agents}))
        return out


def envelopes(events: Sequence[RecordedEvent]) -> list[Envelope]:
    """Frames for a batch of events (bulk-loading what they need)."""
    relevant = [r for r in events if r.event_type in FRAME_EVENT_TYPES]
    if not relevant:
        return []
    message_ids = {r.event.message_id for r in relevant if hasattr(r.event, "message_id")}  # type: ignore[attr-defined]
    customer_ids = {r.event.customer_id for r in relevant}  # type: ignore[attr-defined]
    rows = {m.message_id: m for m in TimelineMessage.objects.filter(message_id__in=message_ids)}
    names = queries.customer_names(customer_ids)
    convs = {
        c.customer_id: queries.present_conversation(c, names)
        for c in Conversation.objects.filter(customer_id__in=customer_ids)
    }
    out = []
    for r in relevant:
        e = r.event
        env = Envelope(r.cursor, e.customer_id)  # type: ignore[attr-defined]
        p = r.position
        conv = convs.get(env.customer_id)
        if isinstance(e, MessageSent):
            msg = queries.present_message(
                message_id=e.message_id, customer_id=e.customer_id, sender_kind=e.sender_kind,
                sender_id=e.sender_id, sender_name=e.sender_name, body=e.body, sent_at=e.sent_at,
                edited_at=None, read_at=None, position=p, names=names,
            )
            frame = {"type": "message.sent", "message": msg, "position": p}
            env.to_customer.append(frame)
            env.to_agents.append(frame)
            if e.sender_kind == SenderKind.AGENT:
                env.to_customer.append(_badge(e.customer_id, r))
        elif isinstance(e, MessageEdited):
            row = rows.get(e.message_id)
            if row is None:
                continue
            msg = queries.present_row(row, names)
            msg.update(body=e.body, edited_at=queries.rfc3339(e.edited_at), position=p)
            frame = {"type": "message.edited", "message": msg, "position": p}
            env.to_customer.append(frame)
            env.to_agents.append(frame)
        elif isinstance(e, MessageMarkedAsRead):
            frame = {
                "type": "message.read", "message_id": str(e.message_id),
                "read_at": queries.rfc3339(e.read_at), "position": p,
            }
            env.to_customer.append(frame)
            env.to_agents.append(frame)
            if e.reader_kind == SenderKind.CUSTOMER:
                env.to_customer.append(_badge(e.customer_id, r))
        elif isinstance(e, ContactDetailsChanged):
            if conv is None:
                continue
        if conv is not None:
            env.to_agents.append({"type": "conversation.updated", "conversation": conv, "position": p})
        out.append(env)
    return out


def _badge(customer_id: uuid.UUID, r: RecordedEvent) -> dict[str, Any]:
    return {"type": "badge", "unread": queries.badge_as_of(customer_id, r.cursor), "position": r.position}
