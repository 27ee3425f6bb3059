"""The conversations context's published language: the events of a conversation's stream.

A conversation is the thread between one customer and the support team;
its workflow (status, assignee, snooze, notes, first-response time) is one
aggregate with one stream per customer, ``conversation-<customer_id>``.
Other contexts (read models, real-time) learn what happened from these
events only. A stored event's type name and fields are a contract with the
log; change them only with an upcaster (eventstore.events).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from eventstore.events import DomainEvent, event


class Status(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class AssignedBy(enum.StrEnum):
    CLAIM = "claim"
    ASSIGN = "assign"
    AUTO = "auto"
    #: An agent answered an unassigned conversation (PARLEY_ASSIGN_ON_REPLY).
    REPLY = "reply"


class ReopenedBecause(enum.StrEnum):
    CUSTOMER_MESSAGE = "customer_message"
    SNOOZE_EXPIRED = "snooze_expired"


@event("ConversationAssigned", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class ConversationAssigned(DomainEvent):
    customer_id: uuid.UUID
    #: The new assignee's user id, or None: unassigned.
    assignee_id: str | None
    assignee_name: str
    previous_assignee_id: str | None
    by: str  # AssignedBy
    actor: str  # "agent:<id>" or "system"
    at: dt.datetime


@event("ConversationStatusChanged", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class ConversationStatusChanged(DomainEvent):
    """An agent set the status to open, pending or resolved."""

    customer_id: uuid.UUID
    status: str  # Status, never "snoozed" (that is ConversationSnoozed)
    previous_status: str
    actor: str
    at: dt.datetime


@event("ConversationSnoozed", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class ConversationSnoozed(DomainEvent):
    customer_id: uuid.UUID
    #: Names this snooze: the timer that ends it carries it, so an older
    #: snooze's timer can never end a newer one.
    snooze_id: uuid.UUID
    until: dt.datetime
    previous_status: str
    actor: str
    at: dt.datetime


@event("ConversationReopened", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class ConversationReopened(DomainEvent):
    """Back to open by itself: the customer wrote, or a snooze ran out."""

    customer_id: uuid.UUID
    reason: str  # ReopenedBecause
    previous_status: str
    #: The message that reopened it, or the snooze that ran out.
    cause_id: uuid.UUID
    at: dt.datetime


@event("FirstResponseClockStarted", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class FirstResponseClockStarted(DomainEvent):
    """A customer message starts a waiting period (none was running)."""

    customer_id: uuid.UUID
    #: The message that started it; it names the waiting period.
    message_id: uuid.UUID
    since: dt.datetime
    #: When the first response is due (None: no first-response target configured).
    due_at: dt.datetime | None


@event("FirstResponseClockStopped", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class FirstResponseClockStopped(DomainEvent):
    """An agent replied (or resolved the conversation): the waiting period ends."""

    customer_id: uuid.UUID
    period_id: uuid.UUID
    #: The agent's reply, or None when the conversation was resolved.
    message_id: uuid.UUID | None
    at: dt.datetime
    #: For a reply: how long the customer waited, counted in business hours
    #: (all of the time when none are configured). None for a resolution, and
    #: in events written before business hours existed.
    business_seconds: float | None = None


@event("FirstResponseSlaBreached", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class FirstResponseSlaBreached(DomainEvent):
    customer_id: uuid.UUID
    period_id: uuid.UUID
    due_at: dt.datetime
    at: dt.datetime


@event("NoteAdded", partitioned_by="customer_id", subject="customer_id", personal=("body",))
@dataclass(frozen=True)
class NoteAdded(DomainEvent):
    """A private note: for agents only, never for the customer."""

    note_id: uuid.UUID
    customer_id: uuid.UUID
    author_id: str
    author_name: str
    body: str
    added_at: dt.datetime


@event("ConversationLabelsChanged", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class ConversationLabelsChanged(DomainEvent):
    """An agent added or removed labels; ``labels`` is the whole set after it, sorted."""

    customer_id: uuid.UUID
    added: tuple[str, ...]
    removed: tuple[str, ...]
    labels: tuple[str, ...]
    actor: str
    at: dt.datetime


@event("ConversationMarkedUnread", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class ConversationMarkedUnread(DomainEvent):
    """One agent wants to come back to this conversation: it counts as unread for them alone."""

    customer_id: uuid.UUID
    agent_id: str
    at: dt.datetime


@event("ConversationMarkedRead", partitioned_by="customer_id", subject="customer_id")
@dataclass(frozen=True)
class ConversationMarkedRead(DomainEvent):
    """The agent who marked the conversation unread opened it again."""

    customer_id: uuid.UUID
    agent_id: str
    at: dt.datetime


@event("ConversationRated", partitioned_by="customer_id", subject="customer_id", personal=("comment",))
@dataclass(frozen=True)
class ConversationRated(DomainEvent):
    """The customer rated a resolved conversation (1 to 5, with an optional comment).

    One rating per resolved period: ``resolution`` counts the times the
    conversation was resolved, so a rating names the period it is about; a
    second rating in the same period replaces the first (the last counts).
    ``comment`` is the customer's own words: personal data.
    """

    customer_id: uuid.UUID
    resolution: int
    score: int
    comment: str
    at: dt.datetime


#: Every event type of a conversation's stream.
CONVERSATION_EVENT_TYPES = frozenset({
    "ConversationAssigned", "ConversationStatusChanged", "ConversationSnoozed", "ConversationReopened",
    "FirstResponseClockStarted", "FirstResponseClockStopped", "FirstResponseSlaBreached", "NoteAdded",
    "ConversationLabelsChanged", "ConversationMarkedUnread", "ConversationMarkedRead", "ConversationRated",
})

#: What one agent marked for themselves: no other agent's list, no customer, no webhook sees it.
PER_AGENT_EVENT_TYPES = frozenset({"ConversationMarkedUnread", "ConversationMarkedRead"})

#: The events that change how a conversation looks in the list (every one but notes and per-agent marks).
WORKFLOW_EVENT_TYPES = CONVERSATION_EVENT_TYPES - {"NoteAdded"} - PER_AGENT_EVENT_TYPES


def stream_id(customer_id: uuid.UUID) -> str:
    return f"conversation-{customer_id}"
