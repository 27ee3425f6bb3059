"""Command handlers: load the stream, let the aggregate decide, append.

Each handler runs in one transaction and retries a bounded number of times
when another writer appended to the same stream first (the unique
(stream, version) constraint). That is what makes a client-generated
message id idempotent under any number of simultaneous copies: exactly one
copy appends ``MessageSent``; the others retry, find it, and are answered
"already sent" (or ``message_id_conflict`` if their body differs).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from chat.domain import (
    ChatMessage,
    EditMessage,
    MarkMessageAsRead,
    MessageNotFound,
    SendMessage,
    stream_id,
)
from eventstore.events import DomainEvent, Metadata, NewEvent
from eventstore.store import ConcurrencyConflict, EventStore

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    """The message after the command, the log position that reflects it,
    and whether this command appended anything."""

    message: ChatMessage
    position: int
    appended: bool


Decide = Callable[[ChatMessage | None, dt.datetime], list[DomainEvent]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _execute(
    message_id: uuid.UUID,
    decide: Decide,
    *,
    store: EventStore,
    metadata: Metadata,
    event_ids: Callable[[int], uuid.UUID] | None = None,
) -> Outcome:
    stream = stream_id(message_id)
    for attempt in range(MAX_ATTEMPTS):
        try:
            with transaction.atomic():
                history = store.read_stream(stream)
                state = ChatMessage.replay([r.event for r in history])
                new = decide(state, _now())
                if not new:
                    if state is None:  # pragma: no cover - decide() raises instead
                        raise MessageNotFound(f"no message {message_id}")
                    return Outcome(state, history[-1].position, appended=False)
                pending = [
                    NewEvent(e, event_id=event_ids(len(history) + i) if event_ids else uuid.uuid4())
                    for i, e in enumerate(new)
                ]
                recorded = store.append(
                    stream, pending, expected_version=len(history), metadata=metadata, savepoint=False
                )
                for evt in new:
                    state = ChatMessage.apply(state, evt)
                assert state is not None
                return Outcome(state, recorded[-1].position, appended=True)
        except ConcurrencyConflict:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def send_message(
    cmd: SendMessage,
    *,
    store: EventStore | None = None,
    metadata: Metadata | None = None,
    event_id: uuid.UUID | None = None,
) -> Outcome:
    """Send, or recognise a repeat of, ``cmd.message_id``.

    ``event_id`` (optional) fixes the id of the MessageSent event, for
    callers that derive it from their own idempotency key.
    """

    def decide(state: ChatMessage | None, now: dt.datetime) -> list[DomainEvent]:
        if state is None:
            return ChatMessage.send(cmd, now)
        state.send_again(cmd)
        return []

    return _execute(
        cmd.message_id,
        decide,
        store=store or EventStore(),
        metadata=metadata or Metadata(actor=cmd.sender.label),
        event_ids=(lambda version: event_id) if event_id else None,
    )


def edit_message(cmd: EditMessage, *, store: EventStore | None = None, metadata: Metadata | None = None) -> Outcome:
    def decide(state: ChatMessage | None, now: dt.datetime) -> list[DomainEvent]:
        if state is None:
            raise MessageNotFound(f"no message {cmd.message_id}")
        return state.edit(cmd, now)

    return _execute(
        cmd.message_id, decide, store=store or EventStore(), metadata=metadata or Metadata(actor=cmd.editor.label)
    )


def mark_message_as_read(
    cmd: MarkMessageAsRead, *, store: EventStore | None = None, metadata: Metadata | None = None
) -> Outcome:
    def decide(state: ChatMessage | None, now: dt.datetime) -> list[DomainEvent]:
        if state is None:
            raise MessageNotFound(f"no message {cmd.message_id}")
        return state.mark_read(cmd, now)

    return _execute(
        cmd.message_id, decide, store=store or EventStore(), metadata=metadata or Metadata(actor=cmd.reader.label)
    )
