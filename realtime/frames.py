"""Every frame a client receives, built here and nowhere else.

``envelopes`` turns a batch of logged events into the frames each audience
sees: the customer's devices and the agents. Each frame shows the read
models as of its event (readmodels.asof): the live fan-out takes them from
the pipeline's batch, before it commits; a resuming socket and a
dispatcher filling a gap read the same rows back (or, once those are gone,
the read models as they are now), with the same function, so a client sees
the same thing live and after a reconnect. Frames travel as JSON text,
encoded once and sent to every socket as they are.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chat.events import MessageEdited, MessageMarkedAsRead, MessageSent
from conversations.events import (
    CONVERSATION_EVENT_TYPES,
    PER_AGENT_EVENT_TYPES,
    ConversationMarkedUnread,
    ConversationRated,
    ConversationReopened,
    ConversationSnoozed,
    ConversationStatusChanged,
    NoteAdded,
    Status,
)
from customers.events import ContactDetailsChanged
from eventstore.events import Cursor, RecordedEvent, Undecodable
from readmodels import asof, folds, present
from readmodels.folds import moves_badge

#: Event types that produce frames.
FRAME_EVENT_TYPES = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead", "ContactDetailsChanged", "CustomerErased"}) | (
    CONVERSATION_EVENT_TYPES
)

#: The audience every agent socket belongs to.
AGENTS = "agents"


def customer_audience(customer_id: uuid.UUID | str) -> str:
    """The audience of one customer's devices."""
    return f"customer.{customer_id}"


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


#: How the text of every ``customer.erased`` frame begins (``type`` comes first in
#: every frame built here, and ``encode`` keeps the order).
_ERASURE_PREFIX = encode({"type": "customer.erased"})[:-1]


def is_erasure(text: str) -> bool:
    """Whether an encoded frame is ``customer.erased``: told from its first bytes,
    without decoding it, as it is asked of every frame a customer's socket sends
    and of every event the dispatcher hands on (realtime.consumers, realtime.logtail)."""
    return text.startswith(_ERASURE_PREFIX)


# -- the frames ------------------------------------------------------------------------


def ack(ref: uuid.UUID | str, position: int) -> dict[str, Any]:
    return {"type": "ack", "ref": str(ref), "position": position}


def error(code: str, detail: str, ref: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
    if ref:
        frame["ref"] = ref
    return frame


def resumed(position: int) -> dict[str, Any]:
    return {"type": "resumed", "position": position}


def resync() -> dict[str, Any]:
    """The server cannot vouch for what this socket got: answer with ``resume``."""
    return {"type": "resync"}


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def typing(customer_id: str, sender: dict[str, str]) -> dict[str, Any]:
    return {"type": "typing", "customer_id": customer_id, "sender": sender}


def presence(agent_id: str, agent_name: str, status: str) -> dict[str, Any]:
    return {"type": "presence", "agent": {"id": agent_id, "name": agent_name}, "status": status}


def badge(unread: int, position: int) -> dict[str, Any]:
    return {"type": "badge", "unread": unread, "position": position}


def rating_prompt(asked: bool, rating: dict[str, Any] | None, position: int) -> dict[str, Any]:
    """Whether the customer is asked to rate their conversation (it is resolved), and their rating of this period."""
    return {"type": "conversation.rating", "asked": asked, "rating": rating, "position": position}


def _rating_prompt(e: Any, position: int) -> dict[str, Any] | None:
    """What a status change or a rating tells the customer's devices about the rating prompt (else None)."""
    if isinstance(e, ConversationRated):
        return rating_prompt(True, present.present_rating(folds.rating(e)), position)
    if isinstance(e, ConversationStatusChanged):
        if Status.RESOLVED.value not in (e.status, e.previous_status):
            return None
        return rating_prompt(e.status == Status.RESOLVED.value, None, position)
    if isinstance(e, ConversationSnoozed | ConversationReopened) and e.previous_status == Status.RESOLVED.value:
        return rating_prompt(False, None, position)
    return None


# -- frames of logged events -----------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """The frames one logged event produces, by audience, as JSON text."""

    cursor: Cursor
    customer_id: str
    to_customer: tuple[str, ...]
    to_agents: tuple[str, ...]

    def wire(self) -> list[Any]:
        """A compact form for the channel layer."""
        return [self.cursor.tx, self.cursor.position, self.customer_id, list(self.to_customer), list(self.to_agents)]

    @classmethod
    def from_wire(cls, raw: Sequence[Any]) -> Envelope:
        tx, position, customer_id, to_customer, to_agents = raw
        return cls(Cursor(int(tx), int(position)), str(customer_id), tuple(to_customer), tuple(to_agents))

    def frames_for(self, audience: str) -> tuple[str, ...]:
        return self.to_agents if audience == AGENTS else self.to_customer


def envelopes(
    events: Sequence[RecordedEvent], rows_of: Callable[[RecordedEvent], asof.Rows | None] | None = None
) -> list[Envelope]:
    """The frames of a batch of events; ``rows_of`` gives each event's rows as of it
    (readmodels.asof; by default read back from the database)."""
    # An event that cannot be decoded shows nothing (its groups stop on it: eventstore.runner).
    relevant = [r for r in events if r.event_type in FRAME_EVENT_TYPES and not isinstance(r.event, Undecodable)]
    if not relevant:
        return []
    rows_of = rows_of or asof.stored(relevant)
    built: list[tuple[Cursor, str, list[dict[str, Any]], list[dict[str, Any]]]] = []
    for r in relevant:
        e: Any = r.event
        p = r.position
        rows = rows_of(r) or {}
        conv = rows.get("conversation")
        to_customer: list[dict[str, Any]] = []
        to_agents: list[dict[str, Any]] = []
        if isinstance(e, MessageSent | MessageEdited):
            if "message" not in rows:
                continue  # cannot happen: a message event's rows hold its message
            kind = "message.sent" if isinstance(e, MessageSent) else "message.edited"
            to_customer.append({"type": kind, "message": rows["message"], "position": p})
            to_agents.append(to_customer[0])
        elif isinstance(e, MessageMarkedAsRead):
            to_customer.append(
                {"type": "message.read", "message_id": str(e.message_id), "read_at": present.rfc3339(e.read_at), "position": p}
            )
            to_agents.append(to_customer[0])
        elif isinstance(e, ContactDetailsChanged) and conv is None:
            continue
        elif r.event_type == "CustomerErased":
            # The customer was erased: every page forgets them (nothing else about them is left to show).
            erased = {"type": "customer.erased", "customer_id": str(e.customer_id), "position": p}
            to_customer.append(erased)
            to_agents.append(erased)
            conv = None
        elif isinstance(e, NoteAdded):
            # A private note: to agents only. Nothing is ever added for the customer.
            to_agents.append({"type": "note.created", "note": rows.get("note"), "position": p})
            conv = None  # a note does not change the conversation row
        elif r.event_type in PER_AGENT_EVENT_TYPES:
            # One agent's own mark: every dashboard hears it, and only that agent's shows it.
            to_agents.append({"type": "conversation.unread", "customer_id": str(e.customer_id),
                              "agent_id": e.agent_id, "unread": isinstance(e, ConversationMarkedUnread),
                              "position": p})
            conv = None
        prompt = _rating_prompt(e, p)
        if prompt is not None:
            to_customer.append(prompt)
        if moves_badge(r):
            to_customer.append(badge((rows.get("badge") or {}).get("unread", 0), p))
        if conv is not None:
            to_agents.append({"type": "conversation.updated", "conversation": conv, "position": p})
        built.append((r.cursor, str(e.customer_id), to_customer, to_agents))
    # Every event of one customer's batch changes the same conversation row:
    # only the last one (the row as of the batch's end) is sent.
    updated: set[str] = set()
    for _, customer_id, _, to_agents in reversed(built):
        if to_agents and to_agents[-1]["type"] == "conversation.updated":
            if customer_id in updated:
                to_agents.pop()
            updated.add(customer_id)
    return [
        Envelope(cursor, customer_id, tuple(encode(f) for f in to_customer), tuple(encode(f) for f in to_agents))
        for cursor, customer_id, to_customer, to_agents in built
    ]


def for_customer(events: Sequence[RecordedEvent], customer_id: str) -> list[RecordedEvent]:
    """The events of one customer's view (filter before building frames: they cost queries)."""
    return [r for r in events if str(getattr(r.event, "customer_id", "")) == customer_id]
