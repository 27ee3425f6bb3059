"""Command handlers: let the aggregate decide, append, answer.

A new message is one INSERT and nothing else: the aggregate validates the
command, and the append at expected version 0 either creates the stream or
hits the unique (stream, version) constraint. Only then is the stream read,
to answer "already sent" (same content) or ``message_id_conflict``. That is
what makes a client-generated message id idempotent under any number of
simultaneous copies, at one round trip for the usual case. A message with
attachments also asks the attachments context (chat.ports) to give them to
it, in the same transaction as the append.

Edits and reads load the stream, let the aggregate decide and append at the
version they read; a writer that got there first makes the append conflict,
and the handler tries again on the new state, a bounded number of times.
Outside a transaction each append commits on its own; inside one (an
inbound webhook claims its delivery key in the same transaction) it runs in
a savepoint.

Every command is timed and counted here, the one place commands run, by
command, by the adapter that issued it (``adapter``: a label the caller
names, "http", "websocket", "webhook") and by result
(observability.metrics): a clock read and two lock-protected additions.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from chat.commands import EditMessage, MarkMessageAsRead, SendMessage, check_attachment_ids
from chat.domain import ChatMessage
from chat.errors import CustomerNotFound, MessageNotFound
from chat.events import AttachmentRef, SenderKind, stream_id
from chat.ports import attachment_catalog, customer_directory
from eventstore.events import DomainEvent, Metadata, NewEvent
from eventstore.store import ConcurrencyConflict, DuplicateEvent, EventStore
from kernel.errors import DomainError
from observability.metrics import command_done

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Written:
    """What a command left: the message after it, the log position that
    reflects it, and whether this command appended anything."""

    message: ChatMessage
    position: int
    appended: bool


Decide = Callable[[ChatMessage | None, dt.datetime], list[DomainEvent]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _measured(command: str, adapter: str, run: Callable[[], Written]) -> Written:
    """Run a command, observing its latency and result (even when it is refused or raises)."""
    started = time.perf_counter()
    result = "failed"
    try:
        written = run()
        result = "appended" if written.appended else "unchanged"
        return written
    except DomainError:
        result = "refused"
        raise
    finally:
        command_done(command, adapter, result, time.perf_counter() - started)


def _execute(message_id: uuid.UUID, decide: Decide, *, store: EventStore, metadata: Metadata) -> Written:
    stream = stream_id(message_id)
    for _ in range(MAX_ATTEMPTS):
        history = store.read_stream(stream)
        state = ChatMessage.replay([r.event for r in history])
        new = decide(state, _now())
        if not new:
            if state is None:  # pragma: no cover - decide() raises instead
                raise MessageNotFound(f"no message {message_id}")
            return Written(state, history[-1].position, appended=False)
        try:
            recorded = store.append(stream, new, expected_version=len(history), metadata=metadata)
        except ConcurrencyConflict:
            continue  # another writer was first: decide again on what it wrote
        for evt in new:
            state = ChatMessage.apply(state, evt)
        assert state is not None
        return Written(state, recorded[-1].position, appended=True)
    raise ConcurrencyConflict(stream, -1, None)


def send_message(
    cmd: SendMessage,
    *,
    store: EventStore | None = None,
    metadata: Metadata | None = None,
    event_id: uuid.UUID | None = None,
    adapter: str = "other",
) -> Written:
    """Send, or recognise a repeat of, ``cmd.message_id``.

    ``event_id`` (optional) fixes the id of the MessageSent event, for
    callers that derive it from their own idempotency key. An agent writes
    only to a customer that exists (asked of the installed CustomerDirectory).
    """
    return _measured("SendMessage", adapter, lambda: _send(cmd, store, metadata, event_id))


def _send(cmd: SendMessage, store: EventStore | None, metadata: Metadata | None, event_id: uuid.UUID | None) -> Written:
    if cmd.sender.kind is SenderKind.AGENT and not customer_directory().is_known(cmd.customer_id):
        raise CustomerNotFound(f"no customer {cmd.customer_id}")
    if not cmd.attachments:
        return _append_sent(cmd, (), store, metadata, event_id)
    check_attachment_ids(cmd.attachments)
    # The files are given to the message in the transaction that appends it:
    # a refused or conflicting send leaves them unsent, and a retry of the
    # same send finds them given to this very message.
    with transaction.atomic():
        attachments = attachment_catalog().claim(
            cmd.attachments, sender=cmd.sender, message_id=cmd.message_id, customer_id=cmd.customer_id)
        return _append_sent(cmd, tuple(attachments), store, metadata, event_id)


def _append_sent(
    cmd: SendMessage, attachments: tuple[AttachmentRef, ...], store: EventStore | None, metadata: Metadata | None,
    event_id: uuid.UUID | None,
) -> Written:
    store = store or EventStore()
    stream = stream_id(cmd.message_id)
    (sent,) = ChatMessage.send(cmd, _now(), attachments)
    try:
        recorded = store.append(
            stream,
            [NewEvent(sent, event_id=event_id or uuid.uuid4())],
            expected_version=0,
            metadata=metadata or Metadata(actor=cmd.sender.label),
        )
    except (ConcurrencyConflict, DuplicateEvent):
        # The message exists: this is a repeat, or its id was taken.
        history = store.read_stream(stream)
        state = ChatMessage.replay([r.event for r in history])
        if state is None:  # the event id is taken by another stream: never by a repeat
            raise
        state.send_again(cmd)
        return Written(state, history[-1].position, appended=False)
    return Written(ChatMessage.apply(None, sent), recorded[0].position, appended=True)


def edit_message(
    cmd: EditMessage, *, store: EventStore | None = None, metadata: Metadata | None = None, adapter: str = "other"
) -> Written:
    def decide(state: ChatMessage | None, now: dt.datetime) -> list[DomainEvent]:
        if state is None:
            raise MessageNotFound(f"no message {cmd.message_id}")
        return state.edit(cmd, now)

    return _measured("EditMessage", adapter, lambda: _execute(
        cmd.message_id, decide, store=store or EventStore(), metadata=metadata or Metadata(actor=cmd.editor.label)
    ))


def mark_message_as_read(
    cmd: MarkMessageAsRead, *, store: EventStore | None = None, metadata: Metadata | None = None, adapter: str = "other"
) -> Written:
    def decide(state: ChatMessage | None, now: dt.datetime) -> list[DomainEvent]:
        if state is None:
            raise MessageNotFound(f"no message {cmd.message_id}")
        return state.mark_read(cmd, now)

    return _measured("MarkMessageAsRead", adapter, lambda: _execute(
        cmd.message_id, decide, store=store or EventStore(), metadata=metadata or Metadata(actor=cmd.reader.label)
    ))
