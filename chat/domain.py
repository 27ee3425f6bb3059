"""The chat message aggregate: its state and its decisions. Plain Python only.

Each message is its own aggregate with its own stream (``message-<id>``),
so writes to different messages never contend. A conversation is the
thread between one customer and the support team: a customer's message is
received by the team (any agent may mark it read), an agent's message is
received by the customer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace

from chat.commands import Actor, EditMessage, MarkMessageAsRead, SendMessage, clean_body
from chat.errors import MessageIdConflict, MessageNotFound, NotReceiver, NotSender
from chat.events import AttachmentRef, MessageEdited, MessageMarkedAsRead, MessageSent, SenderKind
from eventstore.events import DomainEvent

# -- the aggregate ---------------------------------------------------------------


@dataclass(frozen=True)
class ChatMessage:
    """State of one message, rebuilt by folding its events with ``apply``."""

    message_id: uuid.UUID
    customer_id: uuid.UUID
    sender: Actor
    body: str
    sent_at: dt.datetime
    #: The body as sent: a retried SendMessage is compared with this, not with an edit.
    sent_body: str = ""
    edited_at: dt.datetime | None = None
    read_at: dt.datetime | None = None
    #: The files sent with it (they never change after the send).
    attachments: tuple[AttachmentRef, ...] = ()
    version: int = 0

    # -- replay

    @staticmethod
    def apply(state: ChatMessage | None, evt: DomainEvent) -> ChatMessage:
        if isinstance(evt, MessageSent):
            return ChatMessage(
                message_id=evt.message_id,
                customer_id=evt.customer_id,
                sender=Actor(SenderKind(evt.sender_kind), evt.sender_id, evt.sender_name),
                body=evt.body,
                sent_at=evt.sent_at,
                sent_body=evt.body,
                attachments=evt.attachments,
                version=1,
            )
        if state is None:
            raise ValueError(f"{type(evt).__name__} before MessageSent")
        if isinstance(evt, MessageEdited):
            return replace(state, body=evt.body, edited_at=evt.edited_at, version=state.version + 1)
        if isinstance(evt, MessageMarkedAsRead):
            return replace(state, read_at=evt.read_at, version=state.version + 1)
        raise TypeError(f"not a chat message event: {evt!r}")

    @classmethod
    def replay(cls, events: list[DomainEvent]) -> ChatMessage | None:
        state: ChatMessage | None = None
        for evt in events:
            state = cls.apply(state, evt)
        return state

    # -- decisions

    @staticmethod
    def send(cmd: SendMessage, now: dt.datetime, attachments: tuple[AttachmentRef, ...] = ()) -> list[DomainEvent]:
        """Events for a new message (the stream must be empty).

        ``attachments`` are the files ``cmd.attachments`` names, as the
        attachments context described them when it gave them to this message.
        """
        if cmd.sender.kind is SenderKind.CUSTOMER and cmd.sender.id != str(cmd.customer_id):
            raise NotSender("a customer can only write in their own conversation")
        if tuple(a.attachment_id for a in attachments) != cmd.attachments:
            raise ValueError("the attachments described are not the ones the command names")
        return [
            MessageSent(
                message_id=cmd.message_id,
                customer_id=cmd.customer_id,
                sender_kind=cmd.sender.kind.value,
                sender_id=cmd.sender.id,
                sender_name=cmd.sender.name,
                body=clean_body(cmd.body, allow_empty=bool(attachments)),
                sent_at=now,
                channel_sent_at=cmd.channel_sent_at,
                attachments=attachments,
            )
        ]

    def send_again(self, cmd: SendMessage) -> None:
        """A repeated SendMessage: fine if it is the same message, else a conflict.

        A send never answers "not found": an id another party used is just
        taken, and the answer says nothing about that party's message.
        """
        same = (
            self.customer_id == cmd.customer_id
            and self.sender.kind == cmd.sender.kind
            and self.sender.id == cmd.sender.id
            and self.sent_body == clean_body(cmd.body, allow_empty=bool(cmd.attachments))
            and tuple(a.attachment_id for a in self.attachments) == cmd.attachments
        )
        if not same:
            raise MessageIdConflict(f"the message id {self.message_id} is already used by another message")

    def edit(self, cmd: EditMessage, now: dt.datetime) -> list[DomainEvent]:
        self.ensure_visible_to(cmd.editor)
        if cmd.editor.kind != self.sender.kind or cmd.editor.id != self.sender.id:
            raise NotSender("only the sender can edit a message")
        # A message of attachments alone may be edited back to no text.
        body = clean_body(cmd.body, allow_empty=bool(self.attachments))
        if body == self.body:
            return []
        return [MessageEdited(message_id=self.message_id, customer_id=self.customer_id, body=body, edited_at=now)]

    def mark_read(self, cmd: MarkMessageAsRead, now: dt.datetime) -> list[DomainEvent]:
        self.ensure_visible_to(cmd.reader)
        if cmd.reader.kind == self.sender.kind:
            raise NotReceiver("only the receiving side can mark a message read")
        if self.read_at is not None:
            return []
        return [
            MessageMarkedAsRead(
                message_id=self.message_id,
                customer_id=self.customer_id,
                reader_kind=cmd.reader.kind.value,
                reader_id=cmd.reader.id,
                read_at=now,
            )
        ]

    def ensure_visible_to(self, actor: Actor) -> None:
        """Customers see only their own conversation; to them others' messages do not exist."""
        if actor.kind is SenderKind.CUSTOMER and actor.id != str(self.customer_id):
            raise MessageNotFound(f"no message {self.message_id}")


