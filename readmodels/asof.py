"""The read models as of one event: what the pipeline hands to everything downstream.

The pipeline applies each event to every read model in turn
(readmodels.projections); right after that, the rows that event left are
the read models *as of* it. ``EventRowsProjection``, the last projection,
records them: the message, the conversation, the customer, the note and
the badge, as the API shows them, in one ``EventRows`` row per event,
written in the pipeline's transaction.

Who reads them:

* the live frames (realtime.fanout), from the batch's unit of work, before
  the batch even commits;
* the process managers that send (push, webhooks, email fallback), each a
  consumer group of its own that runs behind the pipeline (it reads the log
  only up to the pipeline's checkpoint) and takes the rows of the events it
  handles from the table (``for_events``). They never fold the read models
  again, and a failure in one of them stalls only that one;
* a web process that fills a gap in its live frames from the log
  (``stored``), for as long as the rows are kept.

Rows are deleted once every group that reads them is past them and
``PARLEY_EVENT_ROWS_KEEP_SECONDS`` have gone by; an event whose rows are
gone (a socket resuming from long ago) is shown from the read models as
they are now, as before there were event rows.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection

from chat.events import MessageSent
from conversations.events import WORKFLOW_EVENT_TYPES
from eventstore import keys
from eventstore.events import RecordedEvent
from eventstore.partitions import Partition
from eventstore.unit import Unit
from readmodels import folds, names
from readmodels.models import Badge, Conversation, DirectoryEntry, EventRows, TimelineMessage
from readmodels.ports import agent_names
from readmodels.present import present_conversation, present_note_row, present_profile, present_row
from readmodels.projections import MESSAGE_EVENT_TYPES, Facts, Projection

#: The event types whose rows are recorded: every one a frame, a push, a
#: webhook or an email can follow from.
AS_OF_EVENT_TYPES = (
    MESSAGE_EVENT_TYPES | WORKFLOW_EVENT_TYPES
    | frozenset({"NoteAdded", "CustomerRegistered", "ContactDetailsChanged"})
)
CUSTOMER_EVENT_TYPES = frozenset({"CustomerRegistered", "ContactDetailsChanged"})
#: Seconds between two prunings of old rows.
PRUNE_EVERY = 30.0

#: What an event left: {"message"?, "conversation"?, "customer"?, "note"?, "badge"?: {"unread", "moved"}}.
Rows = dict[str, Any]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class EventRowsProjection(Projection):
    """Records the read models as of each event (see the module docstring).

    ``readers`` are the consumer groups that read the rows: a row is pruned
    only once all of them have a checkpoint past it. In a partitioned
    pipeline each partition prunes its own rows, against its readers' same
    partition.
    """

    name = "as_of"
    event_types = AS_OF_EVENT_TYPES
    tables = (EventRows,)
    needs = ("directory", "timeline", "unread", "badge", "conversations", "notes")
    rebuildable = False

    def __init__(self, readers: Sequence[str] = (), partition: Partition | None = None) -> None:
        self.partition = partition if partition is not None and partition.count > 1 else None
        suffix = self.partition.suffix() if self.partition is not None else ""
        self.readers = tuple(reader + suffix for reader in readers)
        self._pruned_at = 0.0
        self._agents: dict[str, str] = {}

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        # The agents' names as this batch shows them: one read of a small
        # table, in the round trip of the batch's rows, so that every row of
        # the batch names agents as they are now called (readmodels.names),
        # whichever agents its rows turn out to name.
        sql, params, names = agent_names().everyone_query()
        unit.read(sql, params, lambda rows: setattr(self, "_agents", names(rows)))
        customers = {r.event.customer_id for r in events}  # type: ignore[attr-defined]
        unit.want(DirectoryEntry, customers)
        unit.want(Conversation, customers)
        unit.want(Badge, (r.event.customer_id for r in events if folds.moves_badge(r)))  # type: ignore[attr-defined]

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        unit.save(EventRows, {"position": r.position, "tx": r.tx, "customer_id": r.event.customer_id,  # type: ignore[attr-defined]
                              "shard": r.shard, "rows": rows_in(unit, r, facts, self._agents), "written_at": _now()})
        if self.readers and time.monotonic() - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = time.monotonic()
            unit.then(*prune_statement(self.readers, _now() - dt.timedelta(seconds=keep_seconds()), self.partition))

    def reset(self) -> None:
        """Not a read model: a rebuild leaves the rows of the live pipeline alone."""


def keep_seconds() -> float:
    return float(getattr(settings, "PARLEY_EVENT_ROWS_KEEP_SECONDS", 600))


def rows_in(unit: Unit, r: RecordedEvent, facts: Facts, agents: dict[str, str]) -> Rows:
    """The rows ``r`` left, from the unit (every projection before this one has applied ``r``);
    ``agents``: every agent's name, as the batch read them."""
    e: Any = r.event
    directory = unit.get(DirectoryEntry, e.customer_id)
    message = unit.get(TimelineMessage, e.message_id) if r.event_type in MESSAGE_EVENT_TYPES else None
    note = folds.note(r) if r.event_type == "NoteAdded" else None
    conv = unit.get(Conversation, e.customer_id)
    shown = {str(e.customer_id): directory["name"]} if directory else {}
    shown.update(names.agents_of(names.agent_ids_in(message, note, conv), agents))
    out: Rows = {}
    if message is not None:
        out["message"] = present_row(message, shown)
    if note is not None:
        out["note"] = present_note_row(note, shown)
    elif r.event_type in CUSTOMER_EVENT_TYPES and directory is not None:
        out["customer"] = present_profile(directory)
    if conv is not None:
        out["conversation"] = present_conversation(conv, shown)
    if folds.moves_badge(r):
        badge = unit.get(Badge, e.customer_id)
        out["badge"] = {"unread": badge["unread"] if badge else 0, "moved": bool(facts.unread.get(folds.CUSTOMER))}
    return out


def prune_statement(
    readers: Sequence[str], before: dt.datetime, partition: Partition | None = None
) -> tuple[str, list[Any]]:
    """Delete rows written before ``before`` that every reader's checkpoint has passed,
    but those of events an operator parked for a reader (replay_parked reads them).
    Nothing while a reader has never run (no checkpoint): it will need them. Only
    ``partition``'s rows, when given (its readers are that partition's)."""
    marks = ", ".join(["%s"] * len(readers))
    written = connection.ops.adapt_datetimefield_value(before)
    mine, mine_params = ("AND shard %% %s = %s ", [partition.count, partition.index]) if partition else ("", [])
    return (
        f"DELETE FROM readmodels_eventrows WHERE written_at < %s {mine}"
        f"AND (SELECT count(*) FROM parley_checkpoints WHERE name IN ({marks})) = %s "
        f"AND (tx, position) <= (SELECT tx, position FROM parley_checkpoints WHERE name IN ({marks}) "
        f"ORDER BY tx, position LIMIT 1) "
        f"AND position NOT IN (SELECT position FROM parley_parked WHERE replayed_at IS NULL)",
        [written, *mine_params, *readers, len(readers), *readers],
    )


# -- reading them ------------------------------------------------------------------------


def forgotten(r: RecordedEvent) -> bool:
    """Whether ``r``'s customer was erased since it was read: the pipeline has
    forgotten their rows (readmodels.projections.ErasureProjection), so a
    group that follows it finds none, and must do nothing for it."""
    return keys.is_erased(str(r.event.customer_id))  # type: ignore[attr-defined]


def in_unit(unit: Unit) -> Callable[[RecordedEvent], Rows | None]:
    """The rows of the batch's events, from the unit the pipeline just wrote them to."""

    def rows_of(r: RecordedEvent) -> Rows | None:
        row = unit.get(EventRows, r.position)
        return row["rows"] if row is not None else None

    return rows_of


def for_events(unit: Unit, events: Iterable[RecordedEvent]) -> None:
    """Ask a consumer group's unit for the stored rows of ``events`` (read with ``in_unit``)."""
    unit.want(EventRows, (r.position for r in events))


def stored(events: Sequence[RecordedEvent]) -> Callable[[RecordedEvent], Rows | None]:
    """The rows of ``events`` from the table; for those already pruned, the read
    models as they are now (a gap filled or a socket resuming from long ago)."""
    kept = {p: rows for p, rows in EventRows.objects.filter(position__in=[r.position for r in events])
            .values_list("position", "rows")}
    missing = [r for r in events if r.position not in kept and r.event_type in AS_OF_EVENT_TYPES]
    now = current(missing) if missing else {}

    def rows_of(r: RecordedEvent) -> Rows | None:
        return kept.get(r.position) or now.get(r.position)

    return rows_of


def current(events: Sequence[RecordedEvent]) -> dict[int, Rows]:
    """Rows in the shape of ``EventRows`` for these events, from the read models as they are now."""
    customers: set[uuid.UUID] = {r.event.customer_id for r in events}  # type: ignore[attr-defined]
    message_ids = {r.event.message_id for r in events if r.event_type in MESSAGE_EVENT_TYPES}  # type: ignore[attr-defined]
    directory = {d["customer_id"]: d for d in DirectoryEntry.objects.filter(customer_id__in=customers).values()}
    convs = {c["customer_id"]: c for c in Conversation.objects.filter(customer_id__in=customers).values()}
    badges = dict(Badge.objects.filter(customer_id__in=customers).values_list("customer_id", "unread"))
    messages: dict[uuid.UUID, dict[str, Any]] = {
        m["message_id"]: dict(m) for m in TimelineMessage.objects.filter(message_id__in=message_ids).values()}
    notes = [folds.note(r) for r in events if r.event_type == "NoteAdded"]
    new = [folds.timeline(None, r) for r in events if isinstance(r.event, MessageSent) and r.event.message_id not in messages]
    shown = {str(c): d["name"] for c, d in directory.items()}
    shown.update(names.agents_of(names.agent_ids_in(*messages.values(), *convs.values(), *notes, *new)))
    out: dict[int, Rows] = {}
    for r in events:
        e: Any = r.event
        rows: Rows = {}
        if r.event_type in MESSAGE_EVENT_TYPES:
            message: dict[str, Any] | None = messages.get(e.message_id)
            if message is None and isinstance(e, MessageSent):
                message = folds.timeline(None, r)
            if message is not None:
                rows["message"] = present_row(message, shown)
        if r.event_type == "NoteAdded":
            rows["note"] = present_note_row(folds.note(r), shown)
        elif r.event_type in CUSTOMER_EVENT_TYPES and e.customer_id in directory:
            rows["customer"] = present_profile(directory[e.customer_id])
        if e.customer_id in convs:
            rows["conversation"] = present_conversation(convs[e.customer_id], shown)
        if folds.moves_badge(r):
            rows["badge"] = {"unread": badges.get(e.customer_id, 0), "moved": True}
        out[r.position] = rows
    return out
