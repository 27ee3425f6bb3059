"""Everything Parley holds about one customer, as JSON: the answer to an access request.

Built from the log, not from the read models: the log is where every edit
and every read is kept (the read models keep only the current body and the
last read). The customer's message streams are found through the timeline,
which has a row per message of theirs; the contact history is their
customer stream, the agents' notes their conversation stream.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from chat.events import MessageEdited, MessageMarkedAsRead, MessageSent
from chat.events import stream_id as message_stream
from conversations.events import ConversationRated, NoteAdded
from conversations.events import stream_id as conversation_stream
from customers.events import ContactDetailsChanged, CustomerRegistered, EmailUnsubscribed
from customers.events import stream_id as customer_stream
from eventstore.keys import SubjectErased
from eventstore.store import EventStore
from kernel.errors import DomainError
from readmodels import names
from readmodels.models import TimelineMessage
from readmodels.present import attachment_rows, present_attachment, rfc3339


class NothingToExport(DomainError):
    code = "customer_not_found"
    status = 404

    def __init__(self, customer_id: uuid.UUID) -> None:
        super().__init__(f"no customer {customer_id}")


def customer_export(customer_id: uuid.UUID, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The customer's contact details (and their history), every message of their conversation
    with its edits and reads, the notes about them, their ratings, and their attachments' metadata and links.

    NothingToExport if there is no such customer, or they were erased.
    """
    store = EventStore()
    message_ids = list(TimelineMessage.objects.filter(customer_id=customer_id).order_by("sent_at", "message_id")
                       .values_list("message_id", flat=True))
    try:
        contact_events = store.read_stream(customer_stream(customer_id))
        streams = store.read_streams([message_stream(m) for m in message_ids])
        notes = store.read_stream(conversation_stream(customer_id))
    except SubjectErased:
        raise NothingToExport(customer_id) from None
    contact = _contact(contact_events)
    if contact is None:
        raise NothingToExport(customer_id)
    messages = [m for m in (_message(streams[message_stream(i)]) for i in message_ids) if m is not None]
    added = [e for e in (r.event for r in notes) if isinstance(e, NoteAdded)]
    # Agents by the name they are shown by now, as everywhere a customer looks: the
    # name an old event was written with may be a login username (readmodels.names).
    shown = names.agents_of({m["sender"]["id"] for m in messages if m["sender"]["kind"] == "agent"}
                            | {e.author_id for e in added})
    for m in messages:
        if m["sender"]["kind"] == "agent":
            m["sender"]["name"] = shown[m["sender"]["id"]]
    return {
        "customer_id": str(customer_id),
        "exported_at": rfc3339(now or dt.datetime.now(dt.timezone.utc)),
        "contact": contact,
        "messages": messages,
        "notes": [
            {"note_id": str(e.note_id), "author_id": e.author_id, "author_name": shown[e.author_id], "body": e.body,
             "added_at": rfc3339(e.added_at)}
            for e in added
        ],
        # Every rating the customer gave, replaced ones too (the log keeps them): period, score, comment.
        "ratings": [
            {"resolution": e.resolution, "score": e.score, "comment": e.comment, "rated_at": rfc3339(e.at)}
            for e in (r.event for r in notes) if isinstance(e, ConversationRated)
        ],
    }


def _contact(events: list[Any]) -> dict[str, Any] | None:
    contact: dict[str, Any] | None = None
    for r in events:
        e = r.event
        if isinstance(e, CustomerRegistered):
            contact = {"name": e.name, "email": e.email, "phone": e.phone, "external_id": e.external_id,
                       "registered_at": rfc3339(r.recorded_at), "history": [], "unsubscribed": []}
        elif contact is None:
            continue
        if isinstance(e, CustomerRegistered | ContactDetailsChanged):
            contact.update(name=e.name, email=e.email, phone=e.phone)
            contact["history"].append({"at": rfc3339(r.recorded_at), "name": e.name, "email": e.email, "phone": e.phone})
        elif isinstance(e, EmailUnsubscribed):
            contact["unsubscribed"].append({"email": e.email, "at": rfc3339(r.recorded_at)})
    return contact


def _message(events: list[Any]) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    for r in events:
        e = r.event
        if isinstance(e, MessageSent):
            out = {
                "message_id": str(e.message_id),
                "sender": {"kind": e.sender_kind, "id": e.sender_id, "name": e.sender_name},
                "body": e.body, "original_body": e.body, "sent_at": rfc3339(e.sent_at),
                "attachments": [present_attachment(a) for a in attachment_rows(e.attachments)],
                "edits": [], "reads": [],
            }
        elif out is None:
            continue
        elif isinstance(e, MessageEdited):
            out["edits"].append({"body": e.body, "edited_at": rfc3339(e.edited_at)})
            out["body"] = e.body
        elif isinstance(e, MessageMarkedAsRead):
            out["reads"].append({"reader_kind": e.reader_kind, "reader_id": e.reader_id, "read_at": rfc3339(e.read_at)})
    return out
