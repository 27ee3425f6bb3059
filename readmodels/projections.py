"""The read models: each a projection of the log, all applied together by one pipeline member.

A projection owns its tables and applies one pure fold (readmodels.folds)
to each event. ``ReadModels`` is the member of the pipeline (composed in
project/bootstrap.py) that runs them: every batch of the log is read once
and applied to every read model in one transaction with the group's
checkpoint, so a batch is either wholly applied or wholly redone, and every
read model is current to the same position, the one reads answer with.

Events are applied one at a time, each to every projection in turn, in an
order where a projection comes after the ones it reads (``needs``): when
the conversation fold handles an edit, the timeline row it reads is that
message as of the edit; when the unread set changes, the badge and the
conversation hear by how much (``Facts``). So no rule is written twice and
nothing is read "as of the batch's end" by mistake. The last projection,
readmodels.asof, records the rows each event left for everything
downstream (push, webhooks, email, live frames).

Each works on the batch's unit of work (eventstore.unit): ``want`` says
which rows it needs, the unit reads them for every projection at once, and
writes every change in one round. So a batch costs a few statements
whatever its size, and a rebuild is bounded by the database, not by round
trips.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models

from chat.events import MessageMarkedAsRead, MessageSent
from conversations.events import PER_AGENT_EVENT_TYPES, WORKFLOW_EVENT_TYPES
from customers.events import CustomerRegistered
from eventstore.events import RecordedEvent
from eventstore.reading import Batch
from eventstore.unit import Unit
from readmodels import folds
from readmodels.fulltext import indexable
from readmodels.models import (
    AgentUnread,
    Badge,
    Conversation,
    ConversationLabel,
    DirectoryEntry,
    ReportConversation,
    ReportCount,
    ReportFact,
    SearchEntry,
    TimelineMessage,
    TimelineNote,
    Unread,
)

#: The checkpoint of the consumer group the read models run in: every read
#: model is current to this position (the composition root builds the group
#: under this name).
PIPELINE = "pipeline"

MESSAGE_EVENT_TYPES = frozenset({"MessageSent", "MessageEdited", "MessageMarkedAsRead"})


@dataclass
class Facts:
    """What the projections before this one learnt about the event being applied."""

    #: How the event changed the unread count of each reader ("customer", "agents"): -1, 0 or 1.
    unread: dict[str, int] = field(default_factory=dict)


def _customer(r: RecordedEvent) -> uuid.UUID:
    return r.event.customer_id  # type: ignore[attr-defined,no-any-return]


def _message(r: RecordedEvent) -> uuid.UUID:
    return r.event.message_id  # type: ignore[attr-defined,no-any-return]


class Projection(ABC):
    """One read model: its tables, the events it folds, the projections it reads."""

    name: str
    event_types: frozenset[str]
    tables: Sequence[type[models.Model]] = ()
    #: Projections whose rows (or facts) this one reads, as of each event: they are applied first.
    needs: tuple[str, ...] = ()
    #: Whether ``rebuild_readmodels`` rebuilds it (a read model), or it only follows the live log.
    rebuildable = True

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        """Ask the unit for the rows ``apply`` will read (none by default); ``events`` are of this projection's types."""

    @abstractmethod
    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        """Apply one event of this projection's types to the loaded rows."""

    def reset(self) -> None:
        for table in self.tables:
            table._default_manager.all().delete()


class DirectoryProjection(Projection):
    name = "directory"
    event_types = frozenset({"CustomerRegistered", "ContactDetailsChanged", "EmailUnsubscribed", "EmailVerified"})
    tables = (DirectoryEntry,)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        unit.want(DirectoryEntry, (_customer(r) for r in events if not isinstance(r.event, CustomerRegistered)))

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        row = folds.directory(unit.get(DirectoryEntry, _customer(r)), r)
        if row is not None:
            unit.save(DirectoryEntry, row)


class TimelineProjection(Projection):
    name = "timeline"
    event_types = MESSAGE_EVENT_TYPES
    tables = (TimelineMessage,)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        # A MessageSent starts its row; only later events' rows need loading.
        unit.want(TimelineMessage, (_message(r) for r in events if not isinstance(r.event, MessageSent)))

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        row = folds.timeline(unit.get(TimelineMessage, _message(r)), r)
        if row is not None:  # None cannot happen: a stream starts with MessageSent
            unit.save(TimelineMessage, row)


class UnreadProjection(Projection):
    """The one set of unread messages, for both sides; it tells the projections
    after it how each event moved a count (``Facts.unread``)."""

    name = "unread"
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead"})
    tables = (Unread,)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        # A new message is never in the set yet; a read one may be.
        unit.want(Unread, (_message(r) for r in events if isinstance(r.event, MessageMarkedAsRead)))

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        change = folds.unread_change(r)
        if change is None:
            return
        stored = unit.get(Unread, change.message_id)
        if change.opens:
            if stored is not None:
                return  # counted before: never twice
            unit.save(Unread, {"message_id": change.message_id, "customer_id": change.customer_id, "reader": change.reader})
            facts.unread[change.reader] = 1
        elif stored is not None and stored["reader"] == change.reader:
            unit.remove(Unread, change.message_id)
            facts.unread[change.reader] = -1


class BadgeProjection(Projection):
    """Unread agent messages per customer: the unread set's count for the customer."""

    name = "badge"
    event_types = frozenset({"MessageSent", "MessageMarkedAsRead"})
    tables = (Badge,)
    needs = ("unread",)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        unit.want(Badge, (_customer(r) for r in events if folds.moves_badge(r)))

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        delta = facts.unread.get(folds.CUSTOMER, 0)
        if delta:
            customer_id = _customer(r)
            unit.save(Badge, folds.badge(unit.get(Badge, customer_id), customer_id, delta, r))


class ConversationsProjection(Projection):
    """Agents' conversation list: last message, unread_for_agents, awaiting_reply, and the workflow."""

    name = "conversations"
    event_types = MESSAGE_EVENT_TYPES | WORKFLOW_EVENT_TYPES
    tables = (Conversation,)
    needs = ("timeline", "unread")

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        unit.want(Conversation, (_customer(r) for r in events))

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        customer_id = _customer(r)
        message = unit.get(TimelineMessage, _message(r)) if r.event_type in MESSAGE_EVENT_TYPES else None
        conv = folds.conversation(unit.get(Conversation, customer_id), r, message=message,
                                  agents_unread=facts.unread.get(folds.AGENTS, 0))
        if conv is not None:  # None cannot happen: a conversation starts with a message or workflow event
            unit.save(Conversation, conv)


class LabelsProjection(Projection):
    """A row per (conversation, label): what the list's label filter finds."""

    name = "labels"
    event_types = frozenset({"ConversationLabelsChanged"})
    tables = (ConversationLabel,)

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        added, removed = folds.labels(r)
        for key in removed:
            unit.remove(ConversationLabel, key)
        for row in added:
            unit.save(ConversationLabel, row)


class AgentUnreadProjection(Projection):
    """The conversations each agent marked unread for themselves."""

    name = "agent_unread"
    event_types = PER_AGENT_EVENT_TYPES
    tables = (AgentUnread,)

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        key, row = folds.agent_unread(r)
        if row is None:
            unit.remove(AgentUnread, key)
        else:
            unit.save(AgentUnread, row)


class NotesProjection(Projection):
    """Private notes, per conversation, for agents only."""

    name = "notes"
    event_types = frozenset({"NoteAdded"})
    tables = (TimelineNote,)

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        unit.save(TimelineNote, folds.note(r))


class SearchProjection(Projection):
    """The full-text search index (readmodels.fulltext): a row per message
    with its current body, a row per customer with their name and email.

    Every event carries the whole text it leaves, so rows are written
    without being read. Private notes are not indexed: search answers
    customers too, and notes must never reach them.
    """

    name = "search"
    event_types = frozenset({"MessageSent", "MessageEdited", "CustomerRegistered", "ContactDetailsChanged"})
    tables = (SearchEntry,)

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        row = folds.search(r)
        if row is not None:
            unit.save(SearchEntry, {**row, "text": indexable(row["text"])})


class ReportsProjection(Projection):
    """The facts reports add up (readmodels.reports), and what each conversation's fold remembers.

    Days are read in PARLEY_TIME_ZONE and durations in business hours, as
    configured when the fact is folded: after changing them, rebuild
    (``rebuild_readmodels --only reports``) for history to be read the same way.
    """

    name = "reports"
    event_types = folds.REPORT_EVENT_TYPES
    tables = (ReportFact, ReportCount, ReportConversation)
    needs = ("timeline",)
    _clock: folds.ReportClock | None = None

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        self._clock = clock = report_clock()  # read once a batch: the settings of a running process do not change
        unit.want(ReportConversation, (_customer(r) for r in events))
        unit.want(ReportCount, (folds.tally_key(kind, _customer(r), day, agent)
                                for r in events for kind, day, agent in folds.tallies_of(r, clock)))
        # The reply that ended a waiting period names who answered; it may be in an earlier batch.
        unit.want(TimelineMessage, (r.event.message_id for r in events  # type: ignore[attr-defined]
                                    if r.event_type == "FirstResponseClockStopped" and r.event.message_id is not None))  # type: ignore[attr-defined]

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        e: Any = r.event
        replier = None
        if r.event_type == "FirstResponseClockStopped" and e.message_id is not None:
            reply = unit.get(TimelineMessage, e.message_id)
            replier = reply["sender_id"] if reply is not None else None
        clock = self._clock or report_clock()
        state, found, tallies = folds.report(unit.get(ReportConversation, e.customer_id), r, clock, replier=replier)
        unit.save(ReportConversation, state)
        for row in found:
            unit.save(ReportFact, row)
        for kind, day, agent in tallies:
            key = folds.tally_key(kind, e.customer_id, day, agent)
            before = unit.get(ReportCount, key)
            unit.save(ReportCount, {"key": key, "customer_id": e.customer_id, "kind": kind, "day": day,
                                    "agent_id": agent, "count": (before["count"] if before else 0) + 1,
                                    "tx": r.tx, "position": r.position})


def report_clock() -> folds.ReportClock:
    """Days in PARLEY_TIME_ZONE, durations in the configured business hours."""
    from zoneinfo import ZoneInfo

    from conversations.away import business_hours

    return folds.ReportClock(ZoneInfo(getattr(settings, "PARLEY_TIME_ZONE", "UTC") or "UTC"), business_hours())


class ErasureProjection(Projection):
    """Forgets an erased customer: every read-model row of theirs goes (docs/privacy.md).

    Their earlier events already read back as ``Erased`` and are skipped by
    every reader, so a rebuild makes none of these rows again; this removes
    what live projection made before the erasure. The deletes run after the
    batch's other writes, in its transaction, so rows the same batch made
    for them go too. It comes last but one: the rows as of each event
    (readmodels.asof) are forgotten by the same deletes.
    """

    name = "erasure"
    event_types = frozenset({"CustomerErased"})
    #: Every table whose rows belong to a customer (by ``customer_id``).
    forgets: tuple[type[models.Model], ...] = (
        DirectoryEntry, TimelineMessage, Unread, Badge, Conversation, ConversationLabel, AgentUnread, TimelineNote,
        SearchEntry, ReportFact, ReportCount, ReportConversation,
    )

    def apply(self, r: RecordedEvent, unit: Unit, facts: Facts) -> None:
        from readmodels.models import EventRows

        tables: tuple[type[models.Model], ...] = (*self.forgets, EventRows)
        for model in tables:
            where, params = unit.table(model).among("customer_id", [_customer(r)])
            unit.then(f'DELETE FROM "{model._meta.db_table}" WHERE {where}', params)

    def reset(self) -> None:
        """Its tables are the other projections'."""


def read_models() -> list[Projection]:
    """Every rebuildable read model, in an order where each comes after the ones it needs."""
    return [
        DirectoryProjection(), TimelineProjection(), UnreadProjection(), BadgeProjection(), ConversationsProjection(),
        LabelsProjection(), AgentUnreadProjection(), NotesProjection(), SearchProjection(), ReportsProjection(),
        ErasureProjection(),
    ]


def with_needs(chosen: Sequence[Projection], available: Sequence[Projection] | None = None) -> list[Projection]:
    """``chosen`` and every projection they need, in applying order (a rebuild of the
    badge must rebuild the unread set it counts, or it would read today's set as of the past)."""
    pool = {p.name: p for p in (available if available is not None else read_models())}
    pool.update({p.name: p for p in chosen})
    order = list(pool)
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name in wanted:
            return
        wanted.add(name)
        for need in pool[name].needs:
            add(need)

    for p in chosen:
        add(p.name)
    return [pool[name] for name in order if name in wanted]


class ReadModels:
    """The pipeline member that applies every read model (see the module docstring)."""

    name = "readmodels"

    def __init__(self, projections: Sequence[Projection] | None = None) -> None:
        self.projections = list(projections if projections is not None else read_models())
        names = [p.name for p in self.projections]
        for i, p in enumerate(self.projections):
            missing = [n for n in p.needs if n not in names[:i]]
            if missing:
                raise ValueError(f"projection {p.name} needs {missing} applied before it")
        self.event_types: frozenset[str] = frozenset().union(*(p.event_types for p in self.projections))
        self._by_type = {t: [p for p in self.projections if t in p.event_types] for t in self.event_types}

    @property
    def tables(self) -> list[type[models.Model]]:
        return [t for p in self.projections for t in p.tables]

    def prepare(self, batch: Batch) -> None:
        if batch.events:
            assert batch.unit is not None
            self.want(batch.events, batch.unit)

    def handle(self, batch: Batch) -> None:
        if batch.events:
            assert batch.unit is not None
            self.apply(batch.events, batch.unit)

    def want(self, events: Sequence[RecordedEvent], unit: Unit) -> None:
        for p in self.projections:
            if type(p).want is Projection.want:
                continue  # it reads no rows
            mine = [r for r in events if r.event_type in p.event_types]
            if mine:
                p.want(mine, unit)

    def apply(self, events: Sequence[RecordedEvent], unit: Unit) -> dict[str, int]:
        """Apply ``events`` in log order, each to every projection in turn; returns events applied per projection."""
        counts = dict.fromkeys((p.name for p in self.projections), 0)
        for r in events:
            members = self._by_type.get(r.event_type)
            if not members:
                continue
            facts = Facts()
            for p in members:
                p.apply(r, unit, facts)
                counts[p.name] += 1
        return counts

    def reset(self) -> None:
        for p in self.projections:
            p.reset()

    async def after_commit(self, effects: Any) -> None:
        return None
