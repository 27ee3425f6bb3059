"""Every read-model row as a pure function of the events: one fold per row.

Each fold takes the row as it was (a plain dict, None if it does not exist
yet) and one recorded event, and returns the row after it. No Django, no
database: the projections (readmodels.projections) load and save the rows,
these functions decide what they hold, and tests run them alone
(tests/unit/test_folds.py).

Everything else that needs a row (push, webhooks, email, frames) reads the
row these folds made, as of the event it handles (readmodels.asof); none of
them derives it again. So each rule lives here once: what a timeline
message holds after an edit, how a conversation's preview reads, which
messages count as unread and for whom.

Every row belongs to one customer, or to one agent and one customer (a
conversation an agent marked unread for themselves): a fold reads one
customer's events only, which is what lets the pipeline be split by customer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chat.events import AttachmentRef, MessageEdited, MessageMarkedAsRead, MessageSent, SenderKind
from conversations.events import (
    WORKFLOW_EVENT_TYPES,
    ConversationAssigned,
    ConversationLabelsChanged,
    ConversationMarkedRead,
    ConversationMarkedUnread,
    ConversationRated,
    ConversationReopened,
    ConversationSnoozed,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
    FirstResponseSlaBreached,
    NoteAdded,
)
from conversations.hours import BusinessHours, business_seconds
from customers.events import ContactDetailsChanged, CustomerRegistered, EmailUnsubscribed, EmailVerified
from eventstore.events import RecordedEvent

Row = dict[str, Any]

#: Characters of a message kept as a conversation's preview.
PREVIEW_CHARS = 200


# -- one line of a message -------------------------------------------------------------


def attachment_rows(refs: Iterable[AttachmentRef]) -> list[dict[str, Any]]:
    """MessageSent's attachments as the read models keep them (JSON)."""
    return [{"attachment_id": str(a.attachment_id), "name": a.name, "content_type": a.content_type, "size": a.size,
             "has_thumbnail": a.has_thumbnail} for a in refs]


def preview(body: str, attachments: Sequence[Mapping[str, Any]] | Sequence[AttachmentRef]) -> str:
    """A message in one line of a list or a notification: its body, or, for a
    message of attachments alone (also one edited down to no text), a
    paperclip and the files' names."""
    if body or not attachments:
        return body
    names = [a["name"] if isinstance(a, Mapping) else a.name for a in attachments]
    return "\N{PAPERCLIP} " + ", ".join(names)


# -- timeline: one row per message -----------------------------------------------------


def timeline(row: Row | None, r: RecordedEvent) -> Row | None:
    """A message with its current body, read time and files, after ``r``
    (None: an edit or read of a message never sent, which a stream cannot hold)."""
    e = r.event
    if isinstance(e, MessageSent):
        return {
            "message_id": e.message_id, "customer_id": e.customer_id, "sender_kind": e.sender_kind,
            "sender_id": e.sender_id, "sender_name": e.sender_name, "body": e.body, "sent_at": e.sent_at,
            "edited_at": None, "read_at": None, "attachments": attachment_rows(e.attachments),
            "tx": r.tx, "position": r.position,
        }
    if row is None:
        return None
    if isinstance(e, MessageEdited):
        return {**row, "body": e.body, "edited_at": e.edited_at, "tx": r.tx, "position": r.position}
    if isinstance(e, MessageMarkedAsRead):
        return {**row, "read_at": e.read_at, "tx": r.tx, "position": r.position}
    return row


def message_of(events: Iterable[RecordedEvent]) -> Row | None:
    """A message's timeline row from its own stream (the whole fold at once)."""
    row: Row | None = None
    for r in events:
        row = timeline(row, r)
    return row


# -- directory: one row per customer ---------------------------------------------------


def registration_origin(actor: str) -> str:
    """How a customer came to Parley, from the actor that registered them:
    "form" (the visitor form), "api" (the host application's POST
    /api/v1/customers), "webhook" (an inbound webhook), or "" (anything else)."""
    if actor == "visitor":
        return "form"
    if actor == "integration":
        return "api"
    if actor.startswith("inbound:"):
        return "webhook"
    return ""


#: Actors whose word about an email address is not enough: a visitor types any address.
UNTRUSTED_ADDRESS_ACTORS = frozenset({"visitor"})


def _with(addresses: str, email: str) -> str:
    return "\n".join(sorted(set(addresses.split()) | {email.strip().lower()}))


def directory(row: Row | None, r: RecordedEvent) -> Row | None:
    """A customer's contact details after ``r``; ``unsubscribed`` holds the
    addresses that used an email's unsubscribe link, ``verified`` those Parley
    may email (given by the host application, or typed by a visitor and then
    proved: EmailVerified), each lower case, one per line."""
    e = r.event
    trusted = r.metadata.actor not in UNTRUSTED_ADDRESS_ACTORS
    if isinstance(e, CustomerRegistered):
        return {
            "customer_id": e.customer_id, "name": e.name, "email": e.email, "phone": e.phone,
            "external_id": e.external_id, "origin": registration_origin(r.metadata.actor), "unsubscribed": "",
            "verified": e.email.strip().lower() if e.email.strip() and trusted else "",
            "tx": r.tx, "position": r.position,
        }
    if row is None:
        return None
    if isinstance(e, ContactDetailsChanged):
        verified = _with(row["verified"], e.email) if e.email.strip() and trusted else row["verified"]
        return {**row, "name": e.name, "email": e.email, "phone": e.phone, "verified": verified,
                "tx": r.tx, "position": r.position}
    if isinstance(e, EmailUnsubscribed):
        return {**row, "unsubscribed": _with(row["unsubscribed"], e.email), "tx": r.tx, "position": r.position}
    if isinstance(e, EmailVerified):
        return {**row, "verified": _with(row["verified"], e.email), "tx": r.tx, "position": r.position}
    return row


# -- unread: one set, for both sides -----------------------------------------------------

#: Who has a message to read: the customer (an agent wrote it) or the agents (the customer did).
CUSTOMER, AGENTS = "customer", "agents"


@dataclass(frozen=True)
class UnreadChange:
    """What an event does to the one set of unread messages: ``opens`` a
    message for ``reader`` (a message sent), or closes it (the reader read it)."""

    message_id: uuid.UUID
    customer_id: uuid.UUID
    reader: str
    opens: bool


def unread_change(r: RecordedEvent) -> UnreadChange | None:
    """The change ``r`` makes to the unread set, if any.

    A message is unread for the other side from the moment it is sent until
    that side marks it read. Applying a change counts only when the set
    really changes (readmodels.projections), so a message is counted once
    and lowered once, whatever happens twice.
    """
    e = r.event
    if isinstance(e, MessageSent):
        reader = AGENTS if e.sender_kind == SenderKind.CUSTOMER else CUSTOMER
        return UnreadChange(e.message_id, e.customer_id, reader, True)
    if isinstance(e, MessageMarkedAsRead):
        reader = CUSTOMER if e.reader_kind == SenderKind.CUSTOMER else AGENTS
        return UnreadChange(e.message_id, e.customer_id, reader, False)
    return None


def moves_badge(r: RecordedEvent) -> bool:
    """Whether ``r`` can change the customer's badge: an agent's message, a read by the customer."""
    change = unread_change(r)
    return change is not None and change.reader == CUSTOMER


def badge(row: Row | None, customer_id: uuid.UUID, delta: int, r: RecordedEvent) -> Row:
    """The customer's badge (agent messages they have not read) after a change of ``delta``."""
    unread = max(0, (row["unread"] if row else 0) + delta)
    return {"customer_id": customer_id, "unread": unread, "tx": r.tx, "position": r.position}


# -- conversation: one row per customer, as the agents' list shows it ------------------

#: A new conversation row's workflow columns.
WORKFLOW_DEFAULTS: dict[str, Any] = {
    "status": "open", "assignee_id": None, "assignee_name": "", "snoozed_until": None,
    "first_response_due_at": None, "sla_breached": False, "labels": [],
    "rating": None,
}


def last_message_summary(message: Row, *, edited: bool = False) -> dict[str, Any]:
    """The conversation's last message as the list shows it (from its timeline row)."""
    sent_at = message["sent_at"]
    return {
        "message_id": str(message["message_id"]),
        "sender": {"kind": message["sender_kind"], "id": message["sender_id"], "name": message["sender_name"]},
        "preview": preview(message["body"], message["attachments"])[:PREVIEW_CHARS],
        "sent_at": sent_at.isoformat() if isinstance(sent_at, dt.datetime) else sent_at,
        "edited": edited,
    }


def conversation(conv: Row | None, r: RecordedEvent, *, message: Row | None, agents_unread: int) -> Row | None:
    """A conversation after ``r``; None for an event about a conversation not started yet.

    ``message`` is the timeline row of the message ``r`` is about, as of
    ``r`` (after the timeline fold); ``agents_unread`` is how much ``r``
    changed the agents' unread count (the unread set's answer: -1, 0, 1).
    """
    e: Any = r.event
    if r.event_type in WORKFLOW_EVENT_TYPES:
        return {**workflow(conv, r), "tx": r.tx, "position": r.position}
    changes: Row = {}  # the row is copied once, with every change (a replay folds this for every message event)
    if isinstance(e, MessageSent):
        assert message is not None
        if conv is None:
            conv = {**WORKFLOW_DEFAULTS, "customer_id": e.customer_id, "unread_for_agents": 0}
        # Parley's own away reply answers nobody: the customer still waits for the team.
        awaiting = conv["awaiting_reply"] if e.sender_kind == SenderKind.SYSTEM else e.sender_kind == SenderKind.CUSTOMER
        changes = {"last_message": last_message_summary(message), "last_activity_at": e.sent_at, "awaiting_reply": awaiting}
    elif conv is None:
        return None
    elif isinstance(e, MessageEdited):
        last = conv["last_message"] or {}
        if message is not None and last.get("message_id") == str(e.message_id):
            changes = {"last_message": last_message_summary(message, edited=True)}
    elif not isinstance(e, MessageMarkedAsRead):
        return conv
    if agents_unread:
        changes["unread_for_agents"] = max(0, conv["unread_for_agents"] + agents_unread)
    return {**conv, **changes, "tx": r.tx, "position": r.position}


def workflow(conv: Row | None, r: RecordedEvent) -> Row:
    """A conversation row after a workflow event (a row is started by one if no message came first)."""
    e: Any = r.event
    if conv is None:
        at = e.since if isinstance(e, FirstResponseClockStarted) else e.at
        conv = {**WORKFLOW_DEFAULTS, "customer_id": e.customer_id, "last_message": None, "unread_for_agents": 0,
                "awaiting_reply": False, "last_activity_at": at}
    if isinstance(e, ConversationAssigned):
        return {**conv, "assignee_id": e.assignee_id, "assignee_name": e.assignee_name}
    if isinstance(e, ConversationStatusChanged):
        return {**conv, "status": e.status, "snoozed_until": None}
    if isinstance(e, ConversationSnoozed):
        return {**conv, "status": "snoozed", "snoozed_until": e.until}
    if isinstance(e, ConversationReopened):
        return {**conv, "status": "open", "snoozed_until": None}
    if isinstance(e, FirstResponseClockStarted):
        return {**conv, "first_response_due_at": e.due_at, "sla_breached": False}
    if isinstance(e, FirstResponseClockStopped):
        return {**conv, "first_response_due_at": None, "sla_breached": False}
    if isinstance(e, FirstResponseSlaBreached):
        return {**conv, "sla_breached": True}
    if isinstance(e, ConversationLabelsChanged):
        return {**conv, "labels": sorted(e.labels)}
    if isinstance(e, ConversationRated):
        return {**conv, "rating": rating(e)}
    raise TypeError(f"not a workflow event: {e!r}")


def rating(e: ConversationRated) -> dict[str, Any]:
    """A rating as a conversation carries it (the last one counts)."""
    return {"score": e.score, "comment": e.comment, "rated_at": e.at.isoformat()}


# -- labels and per-agent marks ----------------------------------------------------------


def label_key(customer_id: uuid.UUID, label: str) -> str:
    return f"{customer_id}:{label}"


def labels(r: RecordedEvent) -> tuple[list[Row], list[str]]:
    """The (customer, label) rows a labels change adds, and the keys of those it removes."""
    e = r.event
    assert isinstance(e, ConversationLabelsChanged)
    added = [{"key": label_key(e.customer_id, label), "customer_id": e.customer_id, "label": label,
              "tx": r.tx, "position": r.position} for label in e.added]
    return added, [label_key(e.customer_id, label) for label in e.removed]


def agent_unread_key(agent_id: str, customer_id: uuid.UUID) -> str:
    return f"{agent_id}:{customer_id}"


def agent_unread(r: RecordedEvent) -> tuple[str, Row | None]:
    """An agent's own mark on a conversation after ``r``: (its key, the row, or None once read again)."""
    e = r.event
    assert isinstance(e, ConversationMarkedUnread | ConversationMarkedRead)
    key = agent_unread_key(e.agent_id, e.customer_id)
    if isinstance(e, ConversationMarkedRead):
        return key, None
    return key, {"key": key, "agent_id": e.agent_id, "customer_id": e.customer_id, "marked_at": e.at,
                 "tx": r.tx, "position": r.position}


# -- notes and search ------------------------------------------------------------------


def note(r: RecordedEvent) -> Row:
    """A private note, for agents only."""
    e = r.event
    assert isinstance(e, NoteAdded)
    return {
        "note_id": e.note_id, "customer_id": e.customer_id, "author_id": e.author_id, "author_name": e.author_name,
        "body": e.body, "created_at": e.added_at, "tx": r.tx, "position": r.position,
    }


def message_entry_key(message_id: uuid.UUID) -> str:
    return f"message:{message_id}"


def customer_entry_key(customer_id: uuid.UUID) -> str:
    return f"customer:{customer_id}"


def customer_text(name: str, email: str) -> str:
    """What a customer is found by: their name and email address."""
    return f"{name} \u00b7 {email}" if email else name


def search(r: RecordedEvent) -> Row | None:
    """The searchable text ``r`` leaves (before the index's own form, readmodels.fulltext):
    a message's current body, or a customer's name and email. Notes are never
    searchable: search answers customers too."""
    e = r.event
    if isinstance(e, MessageSent | MessageEdited):
        return {"key": message_entry_key(e.message_id), "kind": "message", "customer_id": e.customer_id,
                "message_id": e.message_id, "text": e.body, "tx": r.tx, "position": r.position}
    if isinstance(e, CustomerRegistered | ContactDetailsChanged):
        return {"key": customer_entry_key(e.customer_id), "kind": "customer", "customer_id": e.customer_id,
                "message_id": None, "text": customer_text(e.name, e.email), "tx": r.tx, "position": r.position}
    return None


# -- reports: the facts a report adds up --------------------------------------------------

#: The event types the reports fold reads.
REPORT_EVENT_TYPES = frozenset({
    "MessageSent", "ConversationAssigned", "ConversationStatusChanged", "FirstResponseClockStarted",
    "FirstResponseClockStopped", "FirstResponseSlaBreached", "ConversationRated",
})
#: Facts counted per conversation and day (ReportCount), counted one per event (ReportFact, value 1),
#: and measured (ReportFact, keyed by what they measure).
TALLIED = ("started", "resolved", "customer_message", "agent_message")
COUNTED = ("sla_breach",)
MEASURED = ("first_response", "resolution", "rating")


def tally_key(kind: str, customer_id: uuid.UUID, day: dt.date, agent_id: str) -> str:
    return f"{kind}:{customer_id}:{day.isoformat()}:{agent_id}"


def tallies_of(r: RecordedEvent, clock: ReportClock) -> list[tuple[str, dt.date, str]]:
    """The (kind, day, agent) tallies ``r`` may add one to: known from the event alone, so a batch
    reads exactly the rows it may change. A conversation's start and a customer's message count
    for the team (agent ""); an agent's message for its writer; a resolution for who resolved."""
    e: Any = r.event
    if isinstance(e, MessageSent):
        day = clock.day(e.sent_at)
        if e.sender_kind == SenderKind.CUSTOMER:
            return [("started", day, ""), ("customer_message", day, "")]
        if e.sender_kind == SenderKind.AGENT:
            return [("agent_message", day, e.sender_id)]
    elif isinstance(e, ConversationStatusChanged) and e.status == "resolved":
        return [("resolved", clock.day(e.at), e.actor.removeprefix("agent:") if e.actor.startswith("agent:") else "")]
    return []


@dataclass(frozen=True)
class ReportClock:
    """How reports read time: days in the team's time zone, durations in its business hours."""

    zone: dt.tzinfo
    hours: BusinessHours | None = None

    def day(self, at: dt.datetime) -> dt.date:
        return at.astimezone(self.zone).date()


def report(state: Row | None, r: RecordedEvent, clock: ReportClock, *, replier: str | None = None
           ) -> tuple[Row, list[Row], list[tuple[str, dt.date, str]]]:
    """One conversation's report state after ``r``, the facts ``r`` adds (or replaces), and the
    tallies it adds one to (``tallies_of``'s, those that apply).

    ``replier``: for an agent's first response, who wrote the reply (its
    timeline row's sender). Facts are attributed to the agent who wrote (a
    message, a first response) or resolved, to the conversation's assignee
    at the time (a rating, a breach), and a conversation's start and a
    customer's message to the team (no agent).
    """
    e: Any = r.event
    cid = e.customer_id
    s: Row = dict(state) if state is not None else {
        "customer_id": cid, "open_since": None, "waiting_since": None, "assignee_id": "", "resolutions": 0}
    s.update(tx=r.tx, position=r.position)
    facts: list[Row] = []
    tallies: list[tuple[str, dt.date, str]] = []

    def fact(kind: str, at: dt.datetime, agent: str, value: float = 1.0, key: str | None = None) -> None:
        facts.append({"key": key or f"{kind}:{r.position}", "customer_id": cid, "kind": kind, "day": clock.day(at),
                      "agent_id": agent or "", "value": value, "tx": r.tx, "position": r.position})

    if isinstance(e, MessageSent):
        started, message = tallies_of(r, clock) if e.sender_kind == SenderKind.CUSTOMER else (None, None)
        if started is not None and message is not None:
            if s["open_since"] is None:
                s["open_since"] = e.sent_at
                tallies.append(started)
            tallies.append(message)
        else:
            tallies += tallies_of(r, clock)
    elif isinstance(e, ConversationAssigned):
        s["assignee_id"] = e.assignee_id or ""
    elif isinstance(e, FirstResponseClockStarted):
        s["waiting_since"] = e.since
    elif isinstance(e, FirstResponseClockStopped):
        if e.message_id is not None and s["waiting_since"] is not None:
            waited = e.business_seconds if e.business_seconds is not None else business_seconds(
                clock.hours, s["waiting_since"], e.at)
            fact("first_response", e.at, replier or "", waited, key=f"first_response:{cid}:{e.period_id}")
        s["waiting_since"] = None
    elif isinstance(e, FirstResponseSlaBreached):
        fact("sla_breach", e.at, s["assignee_id"])
    elif isinstance(e, ConversationStatusChanged) and e.status == "resolved":
        s["resolutions"] += 1
        tallies += tallies_of(r, clock)
        resolver = e.actor.removeprefix("agent:") if e.actor.startswith("agent:") else ""
        if s["open_since"] is not None:
            fact("resolution", e.at, resolver, business_seconds(clock.hours, s["open_since"], e.at),
                 key=f"resolution:{cid}:{s['resolutions']}")
        s["open_since"] = None
    elif isinstance(e, ConversationRated):
        fact("rating", e.at, s["assignee_id"], float(e.score), key=f"rating:{cid}:{e.resolution}")
    return s, facts, tallies
