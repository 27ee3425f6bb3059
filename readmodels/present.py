"""The API's objects built from read-model rows: messages, conversations, notes, profiles.

HTTP answers, websocket frames, webhooks and push show the same objects,
built here, so a message looks the same however it reaches anyone. Rows
are plain mappings (the unit of work's dicts, or a queryset's ``values()``),
as the folds (readmodels.folds) make them: no Django here.

``names`` maps a party's id to the name it is shown by now
(readmodels.names): a customer's UUID to their name in the directory, an
agent's user id to their profile's name. A row keeps the name its event
was written with; an agent missing from ``names`` is shown by that.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from readmodels.folds import attachment_rows, preview

__all__ = ["attachment_rows", "preview"]  # the folds' helpers, as the API's builders use them

#: Where an attachment and its thumbnail are downloaded (api.attachments),
#: relative to the deployment's origin, so a page loads them with its cookie
#: and an API client with its bearer token.
ATTACHMENT_URL = "/api/v1/attachments/{}/content"
THUMBNAIL_URL = "/api/v1/attachments/{}/thumbnail"


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def present_attachment(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API's attachment object, from a stored row (attachment_rows)."""
    attachment_id = row["attachment_id"]
    return {
        "attachment_id": attachment_id, "name": row["name"], "content_type": row["content_type"], "size": row["size"],
        "url": ATTACHMENT_URL.format(attachment_id),
        "thumbnail_url": THUMBNAIL_URL.format(attachment_id) if row["has_thumbnail"] else None,
    }


def present_message(
    *,
    message_id: uuid.UUID,
    customer_id: uuid.UUID,
    sender_kind: str,
    sender_id: str,
    sender_name: str,
    body: str,
    sent_at: dt.datetime,
    edited_at: dt.datetime | None,
    read_at: dt.datetime | None,
    position: int,
    names: Mapping[str, str],
    attachments: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The API's message object. A customer's name comes from the directory,
    an agent's from their profile (``names``, see the module docstring);
    ``attachments`` are the stored rows of ``attachment_rows``."""
    if sender_kind == "customer":
        sender_name = names.get(str(customer_id), "")
    else:
        sender_name = names.get(sender_id, sender_name)
    return {
        "message_id": str(message_id),
        "customer_id": str(customer_id),
        "sender": {"kind": sender_kind, "id": sender_id, "name": sender_name},
        "body": body,
        "sent_at": rfc3339(sent_at),
        "edited_at": rfc3339(edited_at),
        "read_at": rfc3339(read_at),
        "attachments": [present_attachment(a) for a in attachments],
        "position": position,
    }


def present_row(row: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A timeline row (readmodels.folds.timeline) as the API's message object."""
    return present_message(
        message_id=row["message_id"], customer_id=row["customer_id"], sender_kind=row["sender_kind"],
        sender_id=row["sender_id"], sender_name=row["sender_name"], body=row["body"], sent_at=row["sent_at"],
        edited_at=row["edited_at"], read_at=row["read_at"], position=row["position"], names=names,
        attachments=row["attachments"],
    )


def present_conversation(row: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A conversation row (readmodels.folds.conversation) as the agents' API shows it."""
    customer_id = str(row["customer_id"])
    last: dict[str, Any] | None = None
    if row["last_message"]:
        last = dict(row["last_message"])
        sender = last.get("sender", {})
        if sender.get("kind") == "customer":
            last["sender"] = {**sender, "name": names.get(customer_id, "")}
        elif sender.get("kind") == "agent":
            last["sender"] = {**sender, "name": names.get(sender["id"], sender.get("name", ""))}
        last["sent_at"] = rfc3339(dt.datetime.fromisoformat(last["sent_at"]))
    return {
        "customer_id": customer_id,
        "customer_name": names.get(customer_id, ""),
        "last_message": last,
        "unread_for_agents": row["unread_for_agents"],
        "awaiting_reply": row["awaiting_reply"],
        "last_activity_at": rfc3339(row["last_activity_at"]),
        "status": row["status"],
        "assignee": ({"id": row["assignee_id"], "name": names.get(row["assignee_id"], row["assignee_name"])}
                     if row["assignee_id"] else None),
        "snoozed_until": rfc3339(row["snoozed_until"]),
        "first_response_due_at": rfc3339(row["first_response_due_at"]),
        "sla_breached": row["sla_breached"],
        "labels": list(row.get("labels") or []),
        "rating": present_rating(row.get("rating")),
        "position": row["position"],
    }


def present_rating(rating: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A conversation's last rating as the API shows it: ``{"score", "comment", "rated_at"}`` or None."""
    if not rating:
        return None
    return {"score": rating["score"], "comment": rating["comment"],
            "rated_at": rfc3339(dt.datetime.fromisoformat(rating["rated_at"]))}


def present_profile(row: Mapping[str, Any]) -> dict[str, Any]:
    """A customer's contact details as the agents' API shows them (a directory row)."""
    return {
        "customer_id": str(row["customer_id"]), "name": row["name"], "email": row["email"],
        "phone": row["phone"], "external_id": row["external_id"], "origin": row["origin"] or None,
    }


def present_note(
    *, note_id: uuid.UUID, customer_id: uuid.UUID, author_id: str, author_name: str, body: str,
    created_at: dt.datetime, position: int,
) -> dict[str, Any]:
    """The API's note object: a private note, for agents only (``kind: "note"``)."""
    return {
        "kind": "note", "note_id": str(note_id), "customer_id": str(customer_id),
        "author": {"id": author_id, "name": author_name}, "body": body, "created_at": rfc3339(created_at),
        "position": position,
    }


def present_note_row(row: Mapping[str, Any], names: Mapping[str, str] | None = None) -> dict[str, Any]:
    author = (names or {}).get(row["author_id"], row["author_name"])
    return present_note(note_id=row["note_id"], customer_id=row["customer_id"], author_id=row["author_id"],
                        author_name=author, body=row["body"], created_at=row["created_at"],
                        position=row["position"])


def present_search_result(
    kind: str, customer_id: uuid.UUID, message: Mapping[str, Any] | None, highlight: str, names: Mapping[str, str]
) -> dict[str, Any]:
    """A search result: the message that matched (as everywhere else) or, for
    a customer found by name or email, null; ``highlight`` marks the matches
    (readmodels.fulltext: U+0002 before, U+0003 after each, "\u2026" where cut)."""
    return {
        "kind": kind,
        "message": present_row(message, names) if message is not None else None,
        "customer_id": str(customer_id),
        "customer_name": names.get(str(customer_id), ""),
        "highlight": highlight,
    }
