"""Reads served from the read models, each answering with the position
its data is current to.

Every read model is written by the pipeline (readmodels.projections.PIPELINE)
together with its checkpoint. Rows are filtered to the checkpoint read
first: every row at or before it is visible, and nothing after it is
returned under a position that does not cover it.

With a partitioned pipeline (eventstore.partitions) a customer's rows are
all written by one partition: reads of one customer use that partition's
checkpoint. Reads across customers answer with the watermark (every
partition has come that far); a row of a partition ahead of it may show a
newer state, and its frame then follows again, which lists keyed by
customer take in their stride.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q

from chat.events import SenderKind
from eventstore import partitions
from eventstore.events import Cursor
from eventstore.runner import checkpoint_cursor
from eventstore.store import EventStore
from readmodels import fulltext, names
from readmodels.folds import CUSTOMER
from readmodels.models import (
    AgentUnread,
    Badge,
    Conversation,
    ConversationLabel,
    DirectoryEntry,
    TimelineMessage,
    TimelineNote,
    Unread,
)
from readmodels.ports import agent_names as agent_names_port
from readmodels.present import (
    present_conversation,
    present_note_row,
    present_profile,
    present_row,
    present_search_result,
)
from readmodels.projections import PIPELINE


def _current(customer_id: uuid.UUID | None = None) -> Cursor:
    """How far the read models are: for one customer, their partition's checkpoint;
    across customers, the watermark of every partition."""
    if partitions.count() == 1:
        return checkpoint_cursor(PIPELINE)
    if customer_id is not None:
        return checkpoint_cursor(PIPELINE + partitions.of_key(customer_id).suffix())
    return partitions.watermark(PIPELINE)


@dataclass(frozen=True)
class _Seen:
    """Each partition's checkpoint, read before a read across customers: a row is
    shown only if its partition had written it by then (as of one checkpoint
    when there is one partition)."""

    checkpoints: dict[partitions.Partition, Cursor]

    @property
    def ceiling(self) -> Cursor:
        return max(self.checkpoints.values())

    def covers(self, row: Mapping[str, Any]) -> bool:
        if len(self.checkpoints) == 1:
            return True  # the query's own bound did it
        own = self.checkpoints[partitions.of_key(row["customer_id"], len(self.checkpoints))]
        return Cursor(int(row["tx"]), int(row["position"])) <= own


def _across_customers() -> tuple[Cursor, _Seen]:
    """(the watermark a read across customers answers with, what each partition had written)."""
    found = partitions.checkpoints(PIPELINE)
    return min(found.values()), _Seen(found)


def _after(cursor: Cursor) -> Q:
    return Q(tx__gt=cursor.tx) | Q(tx=cursor.tx, position__gt=cursor.position)


def _not_after(cursor: Cursor) -> Q:
    return Q(tx__lt=cursor.tx) | Q(tx=cursor.tx, position__lte=cursor.position)


def customer_names(ids: set[str] | set[uuid.UUID]) -> dict[str, str]:
    return names.customer_names(ids)


def agent_names(ids: set[str]) -> dict[str, str]:
    """The name each of these agents is shown by now (readmodels.names)."""
    return names.agents_of(ids)


def agent_name(agent_id: str) -> str | None:
    """The name this user is shown by (an agent, or a former one), or None if the id
    names nobody (or is not an id at all: a string of up to 20 digits)."""
    if not (agent_id.isdigit() and len(agent_id) <= 20):
        return None
    return agent_names_port().names({agent_id}).get(agent_id)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    position: int


def messages_after(customer_id: uuid.UUID, after: int, limit: int, *, with_notes: bool = False) -> Page:
    """Messages of one conversation created or changed after position ``after``, in log order.

    ``with_notes`` (agents only: the caller decides, a customer's read never
    passes it) merges in the conversation's private notes, as items of kind "note".
    """
    current = _current(customer_id)
    start = EventStore().cursor_at(after)
    rows: list[Any] = list(
        TimelineMessage.objects.filter(_after(start), _not_after(current), customer_id=customer_id)
        .order_by("tx", "position").values()[:limit]
    )
    if with_notes:
        notes = TimelineNote.objects.filter(_after(start), _not_after(current), customer_id=customer_id)
        rows = sorted([*rows, *notes.order_by("tx", "position").values()[:limit]],
                      key=lambda r: (r["tx"], r["position"]))[:limit]
    shown = names.names_for(rows, customers={customer_id})
    # A full page answers with its last row, so the next page starts right after it.
    if len(rows) == limit:
        position = rows[-1]["position"]
    elif current > start:
        position = current.position
    else:  # the projection has not reached the client's own position yet
        position = after
    items = [present_note_row(r, shown) if "note_id" in r else present_row(r, shown) for r in rows]
    return Page(items, position)


def badge(customer_id: uuid.UUID) -> tuple[int, int]:
    """(unread, position the badge projection is current to)."""
    current = _current(customer_id)
    row = Badge.objects.filter(customer_id=customer_id).values_list("unread", flat=True).first()
    return int(row or 0), current.position


def timeline_rows(message_ids: set[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    if not message_ids:
        return {}
    return {m["message_id"]: dict(m) for m in TimelineMessage.objects.filter(message_id__in=message_ids).values()}


@dataclass(frozen=True)
class ListFilter:
    """What the agents' list shows; every filter is answered here, whatever page it reaches."""

    status: str | None = None
    #: An agent id; "" for unassigned.
    assignee: str | None = None
    label: str | None = None
    #: Only those where the customer spoke last.
    awaiting_reply: bool = False
    #: An agent id: only conversations unread for them (a customer message no
    #: agent has read, or one they marked unread themselves).
    unread_for: str | None = None


def conversations(
    limit: int, before: dt.datetime | None = None, *, before_id: uuid.UUID | None = None,
    filters: ListFilter = ListFilter(), viewer: str | None = None,
) -> Page:
    """The conversation list, newest activity first, after the page that ended
    at (``before``, ``before_id``): the last conversation's activity time and id.
    ``viewer``: the agent asking, whose own marks (``marked_unread``) the rows carry."""
    current, seen = _across_customers()
    qs = Conversation.objects.filter(_not_after(seen.ceiling)).order_by("-last_activity_at", "customer_id")
    if filters.status is not None:
        qs = qs.filter(status=filters.status)
    if filters.assignee is not None:
        qs = qs.filter(assignee_id=filters.assignee) if filters.assignee else qs.filter(assignee_id__isnull=True)
    if filters.label is not None:
        qs = qs.filter(customer_id__in=ConversationLabel.objects.filter(label=filters.label).values("customer_id"))
    if filters.awaiting_reply:
        qs = qs.filter(awaiting_reply=True)
    if filters.unread_for is not None:
        marked = AgentUnread.objects.filter(agent_id=filters.unread_for).values("customer_id")
        qs = qs.filter(Q(unread_for_agents__gt=0) | Q(customer_id__in=marked))
    if before is not None:
        # Ties in time continue by id, as the order does: no conversation falls between two pages.
        older = Q(last_activity_at__lt=before)
        if before_id is not None:
            older |= Q(last_activity_at=before, customer_id__gt=before_id)
        qs = qs.filter(older)
    rows = [r for r in qs.values()[:limit] if seen.covers(r)]
    return Page(_presented(rows, viewer), current.position)


def _presented(rows: Sequence[Mapping[str, Any]], viewer: str | None) -> list[dict[str, Any]]:
    shown = names.names_for(rows)
    items = [present_conversation(r, shown) for r in rows]
    if viewer is not None:
        marked = set(AgentUnread.objects.filter(agent_id=viewer, customer_id__in=[r["customer_id"] for r in rows])
                     .values_list("customer_id", flat=True))
        for item, row in zip(items, rows, strict=True):
            item["marked_unread"] = row["customer_id"] in marked
    return items


def conversation(customer_id: uuid.UUID, *, viewer: str | None = None) -> dict[str, Any] | None:
    row = Conversation.objects.filter(customer_id=customer_id).values().first()
    return _presented([row], viewer)[0] if row else None


def marked_unread(customer_id: uuid.UUID, agent_id: str) -> bool:
    """Whether this agent marked the conversation unread (as the read models say)."""
    return AgentUnread.objects.filter(agent_id=agent_id, customer_id=customer_id).exists()


@dataclass(frozen=True)
class LabelUse:
    label: str
    conversations: int


def labels() -> list[LabelUse]:
    """Every label in use, with how many conversations carry it, by label."""
    rows = ConversationLabel.objects.values("label").annotate(n=Count("customer_id")).order_by("label")
    return [LabelUse(r["label"], r["n"]) for r in rows]




def customer_profile(customer_id: uuid.UUID) -> dict[str, Any] | None:
    row = DirectoryEntry.objects.filter(customer_id=customer_id).values().first()
    return present_profile(row) if row is not None else None




@dataclass(frozen=True)
class Recipient:
    """Where a customer may be emailed: their address, unless it unsubscribed."""

    name: str
    email: str
    unsubscribed: bool
    #: Whether Parley may send conversation emails there (host-given, or proved by the visitor).
    verified: bool = False
    #: How the customer came (readmodels.folds.registration_origin): "form" is a visitor.
    origin: str = ""


def email_recipient(customer_id: uuid.UUID) -> Recipient | None:
    row = DirectoryEntry.objects.filter(customer_id=customer_id).first()
    if row is None:
        return None
    address = row.email.strip().lower()
    return Recipient(row.name, row.email, address in set(row.unsubscribed.split()),
                     verified=address in set(row.verified.split()), origin=row.origin)


def unread_agent_messages(customer_id: uuid.UUID) -> list[TimelineMessage]:
    """The agents' messages the customer has not marked read, oldest first: what their badge
    counts, less Parley's own automatic replies (the away reply), which no agent wrote."""
    ids = Unread.objects.filter(customer_id=customer_id, reader=CUSTOMER).values("message_id")
    return list(TimelineMessage.objects.filter(message_id__in=ids).exclude(sender_kind=SenderKind.SYSTEM)
                .order_by("sent_at", "position"))


def search(query: str, limit: int, *, customer_id: uuid.UUID | None = None) -> Page:
    """Messages and customers matching ``query``, best match first
    (readmodels.fulltext), as ``present_search_result`` shows them.

    ``customer_id`` searches that customer's conversation only (their own
    search): its messages, not customers. Notes are never searched.
    """
    if customer_id is None:
        current, seen = _across_customers()
        # (a search is never resumed from: a match a partition ahead of the watermark wrote is shown)
        matches = fulltext.match(query, until=seen.ceiling, limit=limit)
    else:
        current = _current(customer_id)
        matches = fulltext.match(query, until=current, limit=limit, customer_id=customer_id, kind="message")
    messages = timeline_rows({m.message_id for m in matches if m.message_id is not None})
    shown = names.names_for(messages.values(), customers={m.customer_id for m in matches})
    items = []
    for m in matches:
        message = messages.get(m.message_id) if m.message_id is not None else None
        if m.kind == "message" and message is None:
            continue  # cannot happen: one pipeline batch writes both; but never answer a half result
        items.append(present_search_result(m.kind, m.customer_id, message, m.highlight, shown))
    return Page(items, current.position)
