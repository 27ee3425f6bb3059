"""The team's saved replies ("canned responses"): shared by every agent, kept by their author.

Any agent may use any saved reply and write new ones; the agent who wrote
one changes or deletes it (others are refused ``not_author``; an admin may
through Django's admin). A reply's body may name the conversation's customer
and the agent with placeholders (``PLACEHOLDERS``), which the dashboard
fills in when the agent inserts it: the message sent is plain text, and the
log keeps it in full.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from conversations.commands import MAX_NOTE_CHARS
from conversations.errors import CannedResponseNotFound, InvalidCannedResponse, NotAuthor, ShortcutTaken
from conversations.models import CannedResponse
from kernel.text import is_storable_text

MAX_SHORTCUT = 32
MAX_TITLE = 80
MAX_BODY = MAX_NOTE_CHARS
#: What a body may name; the dashboard fills each in when the reply is inserted.
PLACEHOLDERS = ("customer.name", "customer.first_name", "agent.name", "agent.first_name")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SHORTCUT = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class Draft:
    """The fields a write gives (None: left as they are)."""

    shortcut: str | None = None
    title: str | None = None
    body: str | None = None


def clean_shortcut(value: str) -> str:
    shortcut = value.strip().lower().removeprefix("/")
    if not shortcut or len(shortcut) > MAX_SHORTCUT or not _SHORTCUT.fullmatch(shortcut):
        raise InvalidCannedResponse(
            f"a shortcut is 1 to {MAX_SHORTCUT} letters a-z, digits, '-' and '_', starting with a letter or digit",
            code="invalid_shortcut")
    return shortcut


def clean_title(value: str) -> str:
    title = " ".join(value.split())
    if not title or len(title) > MAX_TITLE or not is_storable_text(title):
        raise InvalidCannedResponse(f"a title is 1 to {MAX_TITLE} characters of text", code="invalid_title")
    return title


def clean_body(value: str) -> str:
    body = value.strip()
    if not body or len(body) > MAX_BODY or not is_storable_text(body):
        raise InvalidCannedResponse(f"a body is 1 to {MAX_BODY} characters of text", code="invalid_body")
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(body)} - set(PLACEHOLDERS))
    if unknown:
        known = ", ".join("{{" + p + "}}" for p in PLACEHOLDERS)
        raise InvalidCannedResponse(f"the body names {{{{{unknown[0]}}}}}, which is none of {known}",
                                    code="unknown_placeholder")
    return body


def every() -> list[CannedResponse]:
    return list(CannedResponse.objects.order_by("shortcut"))


def get(canned_id: uuid.UUID) -> CannedResponse:
    found = CannedResponse.objects.filter(id=canned_id).first()
    if found is None:
        raise CannedResponseNotFound(f"no saved reply {canned_id}")
    return found


def create(draft: Draft, *, author_id: str) -> CannedResponse:
    if draft.shortcut is None or draft.title is None or draft.body is None:
        raise InvalidCannedResponse("'shortcut', 'title' and 'body' are required", code="missing_field")
    row = CannedResponse(shortcut=clean_shortcut(draft.shortcut), title=clean_title(draft.title),
                         body=clean_body(draft.body), author_id=author_id)
    _save(row, force_insert=True)
    return row


def change(canned_id: uuid.UUID, draft: Draft, *, by: str) -> CannedResponse:
    row = get(canned_id)
    if row.author_id != by:
        raise NotAuthor("only the agent who wrote this saved reply can change it")
    if draft.shortcut is not None:
        row.shortcut = clean_shortcut(draft.shortcut)
    if draft.title is not None:
        row.title = clean_title(draft.title)
    if draft.body is not None:
        row.body = clean_body(draft.body)
    _save(row)
    return row


def delete(canned_id: uuid.UUID, *, by: str) -> None:
    row = get(canned_id)
    if row.author_id != by:
        raise NotAuthor("only the agent who wrote this saved reply can delete it")
    row.delete()


def _save(row: CannedResponse, *, force_insert: bool = False) -> None:
    """Save, or say the shortcut is taken: the unique index decides, also between two agents at once."""
    try:
        with transaction.atomic():
            row.save(force_insert=force_insert)
    except IntegrityError:
        raise ShortcutTaken(f"the shortcut /{row.shortcut} is taken by another saved reply") from None
