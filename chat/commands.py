"""What chat can be asked to do, and by whom (the input of chat.handlers)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from chat.errors import DuplicateAttachment, InvalidBody, TooManyAttachments
from chat.events import SenderKind
from kernel.text import is_storable_text


@dataclass(frozen=True)
class Actor:
    """Who issues a command: a customer (id = customer UUID) or an agent (id = user id)."""

    kind: SenderKind
    id: str
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind.value}:{self.id}"

    @classmethod
    def of(cls, kind: str, id: str, name: str = "") -> Actor:
        """The actor of an authenticated party (``kind``: "customer" or "agent")."""
        return cls(SenderKind(kind), id, name)


@dataclass(frozen=True)
class SendMessage:
    message_id: uuid.UUID
    customer_id: uuid.UUID
    sender: Actor
    body: str
    #: Ids of files the sender uploaded (the attachments context), sent with
    #: the message in this order; the body may be empty when there are some.
    attachments: tuple[uuid.UUID, ...] = ()
    #: When another channel (an inbound webhook) says the message was sent:
    #: kept as its claim. The message's own time is always the server's.
    channel_sent_at: dt.datetime | None = None


@dataclass(frozen=True)
class EditMessage:
    message_id: uuid.UUID
    editor: Actor
    body: str


@dataclass(frozen=True)
class MarkMessageAsRead:
    message_id: uuid.UUID
    reader: Actor


MAX_BODY_CHARS = 4000
MAX_ATTACHMENTS = 10


def clean_body(body: str, *, allow_empty: bool = False) -> str:
    """The body as stored: stripped, 1 to MAX_BODY_CHARS characters of text
    (0 allowed when ``allow_empty``: a message of attachments alone).

    NUL and lone surrogates are refused: they are not text, and PostgreSQL
    cannot store them in a text column, so a projection would fail on them.
    """
    if not is_storable_text(body):
        raise InvalidBody("the message body contains characters that are not text (NUL or lone surrogates)")
    cleaned = body.strip()
    if not cleaned and not allow_empty:
        raise InvalidBody("the message body is empty")
    if len(cleaned) > MAX_BODY_CHARS:
        raise InvalidBody(f"the message body is longer than {MAX_BODY_CHARS} characters")
    return cleaned


def check_attachment_ids(attachment_ids: tuple[uuid.UUID, ...]) -> None:
    """At most MAX_ATTACHMENTS, each named once."""
    if len(attachment_ids) > MAX_ATTACHMENTS:
        raise TooManyAttachments(f"a message has at most {MAX_ATTACHMENTS} attachments")
    if len(set(attachment_ids)) != len(attachment_ids):
        raise DuplicateAttachment("an attachment is named twice")
