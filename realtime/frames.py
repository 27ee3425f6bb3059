"""Every frame a client receives, built here and nowhere else.

``envelopes`` turns a batch of logged events into the frames each audience
sees: the customer's devices and the agents. The live fan-out builds them
once per batch, inside the pipeline's transaction (so the read models are
exactly current to the batch); a resuming socket and a dispatcher filling
a gap build them from the log with the same function, so a client sees the
same thing live and after a reconnect. Frames travel as JSON text, encoded
once and sent to every socket as they are.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chat.events import MessageEdited, MessageMarkedAsRead, MessageSent
from conversations.events import CONVERSATION_EVENT_TYPES, NoteAdded
from customers.events import ContactDetailsChanged
from eventstore.events import Cursor, RecordedEvent
from readmodels import present, selectors
from readmodels.projections import moves_badge

#: Event types that produce frames.
FRAME_EVENT_TYPES = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead", "ContactDetailsChanged"}) | (
    CONVERSATION_EVENT_TYPES
)

#: The audience every agent socket belongs to.
AGENTS = "agents"


def customer_audience(customer_id: uuid.UUID | str) -> str:
    """The audience of one customer's devices."""
    return f"customer.{customer_id}"


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


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


class Lookups(Protocol):
    """What frames need besides the events: names, conversation rows, badges, timeline rows."""

    def customer_names(self, customer_ids: set[uuid.UUID]) -> dict[str, str]: ...

    def conversations_of(self, customer_ids: set[uuid.UUID], names: dict[str, str]) -> dict[str, dict[str, Any]]: ...

    def badges_at(self, changes: list[tuple[uuid.UUID, Cursor]]) -> dict[Cursor, int]: ...

    def timeline_rows(self, message_ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]: ...


class StoredLookups:
    """Lookups answered from the stored read models (a replay, a gap filled from the log)."""

    customer_names = staticmethod(selectors.customer_names)
    conversations_of = staticmethod(selectors.conversations_of)
    badges_at = staticmethod(selectors.badges_at)
    timeline_rows = staticmethod(selectors.timeline_rows)


def envelopes(events: Sequence[RecordedEvent], lookups: Lookups | None = None) -> list[Envelope]:
    """The frames of a batch of events, with what they need loaded in a few queries."""
    relevant = [r for r in events if r.event_type in FRAME_EVENT_TYPES]
    if not relevant:
        return []
    lookups = lookups or StoredLookups()
    customer_ids = {r.event.customer_id for r in relevant}  # type: ignore[attr-defined]
    edited = {r.event.message_id for r in relevant if isinstance(r.event, MessageEdited)}
    names = lookups.customer_names(customer_ids)
    rows = lookups.timeline_rows(edited)
    convs = lookups.conversations_of(customer_ids, names)
    badges = lookups.badges_at([(r.event.customer_id, r.cursor) for r in relevant if moves_badge(r)])  # type: ignore[attr-defined]
    built: list[tuple[Cursor, str, list[dict[str, Any]], list[dict[str, Any]]]] = []
    for r in relevant:
        e = r.event
        p = r.position
        conv = convs.get(str(e.customer_id))  # type: ignore[attr-defined]
        to_customer: list[dict[str, Any]] = []
        to_agents: list[dict[str, Any]] = []
        if isinstance(e, MessageSent):
            msg = present.present_message(
                message_id=e.message_id, customer_id=e.customer_id, sender_kind=e.sender_kind,
                sender_id=e.sender_id, sender_name=e.sender_name, body=e.body, sent_at=e.sent_at,
                edited_at=None, read_at=None, position=p, names=names,
                attachments=present.attachment_rows(e.attachments),
            )
            to_customer.append({"type": "message.sent", "message": msg, "position": p})
            to_agents.append(to_customer[0])
        elif isinstance(e, MessageEdited):
            row = rows.get(e.message_id)
            if row is None:
                continue
            msg = present.present_row(row, names)
            msg.update(body=e.body, edited_at=present.rfc3339(e.edited_at), position=p)
            to_customer.append({"type": "message.edited", "message": msg, "position": p})
            to_agents.append(to_customer[0])
        elif isinstance(e, MessageMarkedAsRead):
            to_customer.append(
                {"type": "message.read", "message_id": str(e.message_id), "read_at": present.rfc3339(e.read_at), "position": p}
            )
            to_agents.append(to_customer[0])
        elif isinstance(e, ContactDetailsChanged) and conv is None:
            continue
        elif isinstance(e, NoteAdded):
            # A private note: to agents only. Nothing is ever added for the customer.
            note = present.present_note(note_id=e.note_id, customer_id=e.customer_id, author_id=e.author_id,
                                        author_name=e.author_name, body=e.body, created_at=e.added_at, position=p)
            to_agents.append({"type": "note.created", "note": note, "position": p})
            conv = None  # a note does not change the conversation row
        if moves_badge(r):
            to_customer.append(badge(badges.get(r.cursor, 0), p))
        if conv is not None:
            to_agents.append({"type": "conversation.updated", "conversation": conv, "position": p})
        built.append((r.cursor, str(e.customer_id), to_customer, to_agents))  # type: ignore[attr-defined]
    # The conversation rows are as of the batch's end, so every event of one
    # customer in the batch carries the same row: only the last one sends it.
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
