"""What chat can be asked to do, and by whom (the input of chat.handlers)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from chat.errors import InvalidBody
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


def clean_body(body: str) -> str:
    """The body as stored: stripped, 1 to MAX_BODY_CHARS characters of text.

    NUL and lone surrogates are refused: they are not text, and PostgreSQL
    cannot store them in a text column, so a projection would fail on them.
    """
    if not is_storable_text(body):
        raise InvalidBody("the message body contains characters that are not text (NUL or lone surrogates)")
    cleaned = body.strip()
    if not cleaned:
        raise InvalidBody("the message body is empty")
    if len(cleaned) > MAX_BODY_CHARS:
        raise InvalidBody(f"the message body is longer than {MAX_BODY_CHARS} characters")
    return cleaned
