"""Command handlers of the conversation aggregate: load, let it decide, append.

Every command reads the conversation's stream, lets the aggregate decide
and appends at the version it read; a writer that got there first makes
the append conflict and the command is decided again on the new state. So
two agents claiming at once get exactly one success, and an assignment is
a compare-and-set on the expected assignee checked against the stream's
latest state, not against a read model.

Commands issued by the process manager and by timers carry a ``cause``
(the message, the timer): their events' ids are derived from it, so a
command re-issued after a crash appends nothing the second time (the log
refuses an event id it already holds).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from conversations.commands import (
    AddNote,
    Assign,
    AssignOnReply,
    AutoAssign,
    ChangeLabels,
    CheckFirstResponse,
    Claim,
    EndSnooze,
    MarkRead,
    MarkUnread,
    Rate,
    RecordAgentReply,
    RecordCustomerMessage,
    SetStatus,
    Snooze,
)
from conversations.domain import Conversation
from conversations.errors import AgentNotFound, ConversationNotFound, NoteIdConflict
from conversations.events import stream_id
from conversations.ports import agent_directory, customer_directory
from eventstore.events import DomainEvent, Metadata, NewEvent, RecordedEvent
from eventstore.store import ConcurrencyConflict, DuplicateEvent, EventStore
from kernel.errors import DomainError
from observability.metrics import command_done

MAX_ATTEMPTS = 20
#: Namespace of the event ids derived from a cause.
CAUSE_NAMESPACE = uuid.UUID("6f1d3c8e-2f4a-4b7e-9c55-1a0e9d7b3f21")

Decide = Callable[[Conversation, dt.datetime], list[DomainEvent]]


class Streams(Protocol):
    """What a command needs of the log: an ``EventStore``, or the workflow's
    ``DeferredAppends``, which writes a batch's appends at its end."""

    def read_stream(self, stream_id: str) -> list[RecordedEvent]: ...

    def append(
        self, stream_id: str, events: Sequence[DomainEvent | NewEvent], expected_version: int,
        metadata: Metadata | None = None,
    ) -> list[RecordedEvent]: ...


@dataclass(frozen=True)
class Outcome:
    """The conversation after a command, the position reflecting it, and whether it appended."""

    conversation: Conversation
    position: int
    appended: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def caused_event_id(cause: str, index: int) -> uuid.UUID:
    return uuid.uuid5(CAUSE_NAMESPACE, f"{cause}#{index}")


def execute(
    customer_id: uuid.UUID,
    decide: Decide,
    *,
    command: str,
    actor: str,
    store: Streams | None = None,
    metadata: Metadata | None = None,
    cause: str | None = None,
    now: dt.datetime | None = None,
    adapter: str = "other",
    conflict_if_elsewhere: bool = False,
    history: list[RecordedEvent] | None = None,
) -> Outcome:
    """Run one command against the conversation of ``customer_id`` (see the module docstring).

    ``history``: the stream as a caller already read it (a batch of the
    process manager reads all its conversations in one query), decided on
    first; if it is stale, the append conflicts and the stream is read again.
    """
    started = time.perf_counter()
    result = "failed"
    try:
        outcome = _execute(customer_id, decide, store or EventStore(), metadata or Metadata(actor=actor), cause, now,
                           conflict_if_elsewhere, history)
        result = "appended" if outcome.appended else "unchanged"
        return outcome
    except DomainError:
        result = "refused"
        raise
    finally:
        command_done(command, adapter, result, time.perf_counter() - started)


def _execute(
    customer_id: uuid.UUID, decide: Decide, store: Streams, metadata: Metadata, cause: str | None,
    now: dt.datetime | None, conflict_if_elsewhere: bool, known: list[RecordedEvent] | None,
) -> Outcome:
    stream = stream_id(customer_id)
    for _ in range(MAX_ATTEMPTS):
        if known is not None:  # used once: a conflict means it was stale
            history, known = known, None
        else:
            history = store.read_stream(stream)
        state = Conversation.replay(customer_id, [(r.event, r.position) for r in history])
        new = decide(state, now or _now())
        if not new:
            return Outcome(state, history[-1].position if history else 0, appended=False)
        events = [NewEvent(e, caused_event_id(cause, i)) if cause else NewEvent(e) for i, e in enumerate(new)]
        try:
            recorded = store.append(stream, events, expected_version=len(history), metadata=metadata)
        except ConcurrencyConflict:
            continue  # another writer was first: decide again on what it wrote
        except DuplicateEvent:
            if cause is None:
                raise
            # This cause was acted on already (a command re-issued after a crash).
            history = store.read_stream(stream)
            state = Conversation.replay(customer_id, [(r.event, r.position) for r in history])
            if conflict_if_elsewhere and decide(state, now or _now()):
                raise  # the cause's events are in another stream: its id is taken there
            return Outcome(state, history[-1].position if history else 0, appended=False)
        for rec in recorded:
            state = state.apply(rec.event, rec.position)
        return Outcome(state, recorded[-1].position, appended=True)
    raise ConcurrencyConflict(stream, -1, None)


def _known(customer_id: uuid.UUID) -> None:
    if not customer_directory().is_known(customer_id):
        raise ConversationNotFound(f"no customer {customer_id}")


# -- agents' commands


def claim(cmd: Claim, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    _known(cmd.customer_id)
    return execute(cmd.customer_id, lambda s, now: s.claim(cmd, now), command="Claim", actor=cmd.agent.label,
                   metadata=metadata, adapter=adapter)


def assign(cmd: Assign, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    _known(cmd.customer_id)
    if cmd.assignee is not None:
        found = agent_directory().agent(cmd.assignee.id)
        if found is None:
            raise AgentNotFound(f"no agent {cmd.assignee.id}")
        cmd = Assign(cmd.customer_id, found, cmd.expected, cmd.by)
    return execute(cmd.customer_id, lambda s, now: s.assign(cmd, now), command="Assign", actor=cmd.by.label,
                   metadata=metadata, adapter=adapter)


def set_status(cmd: SetStatus, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    _known(cmd.customer_id)
    return execute(cmd.customer_id, lambda s, now: s.set_status(cmd, now), command="SetStatus", actor=cmd.by.label,
                   metadata=metadata, adapter=adapter)


def snooze(cmd: Snooze, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    _known(cmd.customer_id)
    return execute(cmd.customer_id, lambda s, now: s.snooze(cmd, now), command="Snooze", actor=cmd.by.label,
                   metadata=metadata, adapter=adapter)


def add_note(cmd: AddNote, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    """Add a note, or recognise a repeat of ``note_id``.

    The NoteAdded event's id is derived from the note id, so a note id used
    in another conversation is refused by the log itself (``note_id_conflict``).
    """
    _known(cmd.customer_id)
    try:
        return execute(cmd.customer_id, lambda s, now: s.add_note(cmd, now), command="AddNote",
                       actor=cmd.author.label, metadata=metadata, cause=f"note:{cmd.note_id}", adapter=adapter,
                       conflict_if_elsewhere=True)
    except DuplicateEvent:
        raise NoteIdConflict(f"the note id {cmd.note_id} is already used by another note") from None


def change_labels(cmd: ChangeLabels, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    _known(cmd.customer_id)
    return execute(cmd.customer_id, lambda s, now: s.change_labels(cmd, now), command="ChangeLabels",
                   actor=cmd.by.label, metadata=metadata, adapter=adapter)


def mark_unread(cmd: MarkUnread, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    _known(cmd.customer_id)
    return execute(cmd.customer_id, lambda s, now: s.mark_unread(cmd, now), command="MarkUnread",
                   actor=cmd.agent.label, metadata=metadata, adapter=adapter)


def mark_read(cmd: MarkRead, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    _known(cmd.customer_id)
    return execute(cmd.customer_id, lambda s, now: s.mark_read(cmd, now), command="MarkRead",
                   actor=cmd.agent.label, metadata=metadata, adapter=adapter)


# -- the customer's command


def current(customer_id: uuid.UUID, *, store: Streams | None = None) -> Outcome:
    """The conversation as its stream says now (nothing appended)."""
    history = (store or EventStore()).read_stream(stream_id(customer_id))
    state = Conversation.replay(customer_id, [(r.event, r.position) for r in history])
    return Outcome(state, history[-1].position if history else 0, appended=False)


def rate(cmd: Rate, *, metadata: Metadata | None = None, adapter: str = "other") -> Outcome:
    return execute(cmd.customer_id, lambda s, now: s.rate(cmd, now), command="Rate",
                   actor=f"customer:{cmd.customer_id}", metadata=metadata, adapter=adapter)


# -- the process manager's and the timers' commands (each with its cause)


def record_customer_message(
    cmd: RecordCustomerMessage, *, store: Streams | None = None, history: list[RecordedEvent] | None = None,
) -> Outcome:
    return execute(cmd.customer_id, lambda s, now: s.record_customer_message(cmd, now), command="RecordCustomerMessage",
                   actor="system", store=store, cause=f"customer-message:{cmd.message_id}", now=cmd.sent_at,
                   adapter="workflow", history=history)


def record_agent_reply(
    cmd: RecordAgentReply, *, store: Streams | None = None, history: list[RecordedEvent] | None = None,
) -> Outcome:
    return execute(cmd.customer_id, lambda s, now: s.record_agent_reply(cmd, now), command="RecordAgentReply",
                   actor="system", store=store, cause=f"agent-reply:{cmd.message_id}", now=cmd.sent_at,
                   adapter="workflow", history=history)


def assign_on_reply(cmd: AssignOnReply, *, now: dt.datetime, store: Streams | None = None) -> Outcome:
    return execute(cmd.customer_id, lambda s, at: s.assign_on_reply(cmd, at), command="AssignOnReply",
                   actor=cmd.agent.label, store=store, cause=f"reply-assign:{cmd.message_id}", now=now,
                   adapter="workflow")


def auto_assign(cmd: AutoAssign, *, cause: str, now: dt.datetime, store: Streams | None = None) -> Outcome:
    return execute(cmd.customer_id, lambda s, at: s.auto_assign(cmd, at), command="AutoAssign", actor="system",
                   store=store, cause=f"auto-assign:{cause}", now=now, adapter="workflow")


def end_snooze(cmd: EndSnooze, *, cause: str, now: dt.datetime) -> Outcome:
    return execute(cmd.customer_id, lambda s, at: s.end_snooze(cmd, at), command="EndSnooze", actor="system",
                   cause=cause, now=now, adapter="timer")


def check_first_response(cmd: CheckFirstResponse, *, cause: str, now: dt.datetime) -> Outcome:
    return execute(cmd.customer_id, lambda s, at: s.check_first_response(cmd, at), command="CheckFirstResponse",
                   actor="system", cause=cause, now=now, adapter="timer")
