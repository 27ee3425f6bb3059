"""What can be asked of a conversation, and by whom (the input of conversations.handlers)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from conversations.errors import InvalidComment, InvalidLabel, InvalidNote, InvalidScore
from conversations.hours import BusinessHours
from kernel.text import is_storable_text

MAX_NOTE_CHARS = 4000
#: A snooze ends within this long at most.
MAX_SNOOZE = dt.timedelta(days=366)
#: Labels a conversation carries at most, and characters a label has at most.
MAX_LABELS = 20
MAX_LABEL_CHARS = 32
#: A rating's score is 1 to MAX_SCORE; its comment at most MAX_COMMENT_CHARS characters.
MAX_SCORE = 5
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class Agent:
    """An agent (a user id and their name)."""

    id: str
    name: str = ""

    @property
    def label(self) -> str:
        return f"agent:{self.id}"


@dataclass(frozen=True)
class Claim:
    customer_id: uuid.UUID
    agent: Agent


@dataclass(frozen=True)
class Assign:
    """Compare-and-set: assign to ``assignee`` (None: unassign) if the assignee is ``expected``."""

    customer_id: uuid.UUID
    assignee: Agent | None
    expected: str | None
    by: Agent


@dataclass(frozen=True)
class SetStatus:
    customer_id: uuid.UUID
    status: str
    by: Agent


@dataclass(frozen=True)
class Snooze:
    customer_id: uuid.UUID
    until: dt.datetime
    by: Agent


@dataclass(frozen=True)
class AddNote:
    note_id: uuid.UUID
    customer_id: uuid.UUID
    author: Agent
    body: str


@dataclass(frozen=True)
class ChangeLabels:
    """Add and remove labels (each already cleaned: ``clean_label``)."""

    customer_id: uuid.UUID
    add: tuple[str, ...]
    remove: tuple[str, ...]
    by: Agent


@dataclass(frozen=True)
class MarkUnread:
    """The agent wants to come back to the conversation: unread for them."""

    customer_id: uuid.UUID
    agent: Agent


@dataclass(frozen=True)
class MarkRead:
    """The agent opened a conversation they had marked unread."""

    customer_id: uuid.UUID
    agent: Agent


@dataclass(frozen=True)
class Rate:
    """The customer rates their resolved conversation (``score`` and ``comment`` already cleaned)."""

    customer_id: uuid.UUID
    score: int
    comment: str


# -- issued by the workflow process manager and the scheduled commands


@dataclass(frozen=True)
class RecordCustomerMessage:
    customer_id: uuid.UUID
    message_id: uuid.UUID
    sent_at: dt.datetime
    #: How long the first response may take (None: no target).
    first_response: dt.timedelta | None
    #: The message's position in the log.
    position: int = 0
    #: The team's opening hours: the first response is due after ``first_response`` of them (None: always open).
    hours: BusinessHours | None = None


@dataclass(frozen=True)
class RecordAgentReply:
    customer_id: uuid.UUID
    message_id: uuid.UUID
    sent_at: dt.datetime
    #: The team's opening hours: the wait is counted in them (None: always open).
    hours: BusinessHours | None = None


@dataclass(frozen=True)
class AssignOnReply:
    """An agent answered: the conversation becomes theirs if nobody holds it."""

    customer_id: uuid.UUID
    agent: Agent
    #: The reply (its id names the assignment's cause).
    message_id: uuid.UUID


@dataclass(frozen=True)
class AutoAssign:
    customer_id: uuid.UUID
    agent: Agent


@dataclass(frozen=True)
class EndSnooze:
    customer_id: uuid.UUID
    snooze_id: uuid.UUID


@dataclass(frozen=True)
class CheckFirstResponse:
    customer_id: uuid.UUID
    period_id: uuid.UUID


def clean_note(body: str) -> str:
    """A note's body as stored: stripped, 1 to MAX_NOTE_CHARS characters of text."""
    if not is_storable_text(body):
        raise InvalidNote("the note contains characters that are not text (NUL or lone surrogates)")
    cleaned = body.strip()
    if not cleaned:
        raise InvalidNote("the note is empty")
    if len(cleaned) > MAX_NOTE_CHARS:
        raise InvalidNote(f"the note is longer than {MAX_NOTE_CHARS} characters")
    return cleaned


def clean_label(value: str) -> str:
    """A label as stored: trimmed, lower case, 1 to MAX_LABEL_CHARS letters,
    digits, hyphens and underscores, starting with a letter or digit
    ("vip", "refund-request", "größe"). One form per label, so "VIP" and
    "vip " are one label, and any label fits a URL's query and a chip."""
    label = value.strip().lower()
    if not label:
        raise InvalidLabel("a label is empty")
    if len(label) > MAX_LABEL_CHARS:
        raise InvalidLabel(f"the label {label[:MAX_LABEL_CHARS]!r}… is longer than {MAX_LABEL_CHARS} characters")
    if not label[0].isalnum() or not all(ch.isalnum() or ch in "-_" for ch in label):
        raise InvalidLabel(f"the label {label!r} may hold only letters, digits, '-' and '_', and starts with a letter or digit")
    return label


def clean_score(value: object) -> int:
    """A rating's score: a whole number from 1 to MAX_SCORE."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SCORE:
        raise InvalidScore(f"'score' must be a whole number from 1 to {MAX_SCORE}")
    return value


def clean_comment(value: str) -> str:
    """A rating's comment as stored: stripped, at most MAX_COMMENT_CHARS characters of text (may be empty)."""
    if not is_storable_text(value):
        raise InvalidComment("the comment contains characters that are not text (NUL or lone surrogates)")
    cleaned = value.strip()
    if len(cleaned) > MAX_COMMENT_CHARS:
        raise InvalidComment(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
    return cleaned
