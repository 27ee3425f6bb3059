"""The workflow process manager: turns what happens in chat into conversation commands and timers.

A consumer of the log in a group of its own (``WORKFLOW``, composed in
project/bootstrap.py). Unlike the read models it writes new facts: the
commands it issues append events, and the timers it schedules or cancels
are rows of ``parley_timers``; all of it in the runner's transaction with
its checkpoint. A batch that fails or is redone after a crash leaves
nothing behind, and the events it appends have ids derived from their
cause, so the batch redone appends nothing twice.

* A customer's message: reopens a pending, snoozed or resolved
  conversation, starts the waiting period (with its first-response timer),
  and, with ``PARLEY_AUTO_ASSIGN=round_robin``, assigns an unassigned
  conversation to the online agent whose turn it is, below their capacity.
  Outside business hours (conversations.away), the message that starts
  a waiting period gets the one automatic away reply of that period.
* An agent's message: ends the waiting period (its timer is cancelled)
  and, with ``PARLEY_ASSIGN_ON_REPLY`` (on by default), assigns a
  conversation nobody holds to that agent, as their claim would. A
  message of kind ``system`` (the away reply) is neither: it ends no
  waiting period and assigns nobody.
* A snooze schedules the timer that ends it; any other status change
  cancels it. A snooze that runs out reopens the conversation, which is
  then auto-assigned like a new one.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from chat.events import MessageSent, SenderKind
from conversations import handlers
from conversations.away import business_hours, reply_if_away
from conversations.commands import Agent, AssignOnReply, AutoAssign, RecordAgentReply, RecordCustomerMessage
from conversations.events import (
    ConversationAssigned,
    ConversationReopened,
    ConversationSnoozed,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
    ReopenedBecause,
    Status,
    stream_id,
)
from conversations.models import AgentTurn, Routing
from conversations.ports import agent_directory
from eventstore.deferred import DeferredAppends
from eventstore.events import RecordedEvent
from eventstore.keys import SubjectErased
from eventstore.reading import Batch
from eventstore.store import ConcurrencyConflict, DuplicateEvent, EventStore
from workers import timers

log = logging.getLogger(__name__)

#: The consumer group (and checkpoint) of the workflow process manager.
WORKFLOW = "workflow"

SNOOZE_TIMER = "conversation.snooze_ends"
FIRST_RESPONSE_TIMER = "conversation.first_response_due"


def first_response_key(customer_id: uuid.UUID, period_id: uuid.UUID) -> str:
    """The first-response timer of one waiting period (named by the message that started it)."""
    return f"first-response:{customer_id}:{period_id}"


def first_response() -> dt.timedelta | None:
    seconds = float(getattr(settings, "PARLEY_FIRST_RESPONSE_SECONDS", 0) or 0)
    return dt.timedelta(seconds=seconds) if seconds > 0 else None


def auto_assign_enabled() -> bool:
    return getattr(settings, "PARLEY_AUTO_ASSIGN", "") == "round_robin"


def assign_on_reply_enabled() -> bool:
    return bool(getattr(settings, "PARLEY_ASSIGN_ON_REPLY", True))


def capacity() -> int:
    return int(getattr(settings, "PARLEY_AGENT_CAPACITY", 10))


class WorkflowProcessManager:
    """Consumer ``workflow`` (see the module docstring)."""

    name = WORKFLOW
    event_types = frozenset({
        "MessageSent", "ConversationAssigned", "ConversationStatusChanged", "ConversationSnoozed",
        "ConversationReopened", "FirstResponseClockStarted", "FirstResponseClockStopped", "CustomerErased",
    })

    def handle(self, batch: Batch) -> None:
        """Decide on every event of the batch, then write, so that the batch's
        transaction has an id (which readers of the log wait behind) only for
        its last round trips (eventstore.deferred). If a conversation changed
        under a decision meanwhile (an agent's claim a moment ago), everything
        the deferred pass did is rolled back to a savepoint and the batch is
        decided again the plain way, each command appending as it goes and
        deciding again on a conflict."""
        if connection.vendor == "postgresql":  # SQLite has one writer and no read barrier
            try:
                with transaction.atomic():
                    self._handle_batch(batch, DeferredAppends())
                return
            except (ConcurrencyConflict, DuplicateEvent, SubjectErased) as exc:
                # A conversation of the batch moved, or its customer was erased, since it was read.
                log.info("workflow: a conversation of the batch changed meanwhile (%s): deciding again", exc)
        self._handle_batch(batch, EventStore())

    def _handle_batch(self, batch: Batch, store: handlers.Streams) -> None:
        routes = Routes.of(batch)
        # Every conversation a message of the batch concerns, read in one
        # query; each is used by the first command on it (the next ones
        # read again: the first may have appended).
        streams = {stream_id(r.event.customer_id) for r in batch.events if isinstance(r.event, MessageSent)}
        try:
            histories = EventStore().read_streams(streams) if streams else {}
        except SubjectErased:  # a customer of the batch was erased meanwhile: each command reads its own
            histories = {}
        ended: list[str] = []  # first-response timers of the periods that ended, cancelled at once at the end
        erased = []
        for r in batch.events:
            if r.event_type == "CustomerErased":
                erased.append(r.event.customer_id)  # type: ignore[attr-defined]
                continue
            try:
                self._handle(r, routes, histories, ended, store)
            except SubjectErased:
                continue  # erased since this batch was read: nothing is decided about them any more
        if isinstance(store, DeferredAppends):
            store.flush()  # first of the batch's writes: its transaction has an id from here on
        routes.save()
        timers.cancel_keys(ended)
        if erased:
            # An erased customer's conversation is no agent's load any more.
            Routing.objects.filter(customer_id__in=erased).delete()

    def _handle(
        self, r: RecordedEvent, routes: Routes, histories: dict[str, list[RecordedEvent]], ended: list[str],
        store: handlers.Streams,
    ) -> None:
        e = r.event
        if isinstance(e, MessageSent):
            history = histories.pop(stream_id(e.customer_id), None)
            hours = business_hours()
            if e.sender_kind == SenderKind.CUSTOMER:
                outcome = handlers.record_customer_message(RecordCustomerMessage(
                    e.customer_id, e.message_id, e.sent_at, first_response(), r.position, hours),
                    store=store, history=history)
                conv = outcome.conversation
                if conv.period_id == e.message_id:  # this message started the waiting period
                    reply_if_away(e.customer_id, e.message_id, e.sent_at, hours)
                # The aggregate's own state, ahead of the events this consumer has yet to read.
                routes.set(e.customer_id, assignee_id=conv.assignee.id if conv.assignee else None,
                       resolved=conv.status is Status.RESOLVED)
                if conv.assignee is None and conv.status is Status.OPEN:
                    self._auto_assign(e.customer_id, f"message:{e.message_id}", r, routes, store)
            elif e.sender_kind == SenderKind.AGENT:
                outcome = handlers.record_agent_reply(
                    RecordAgentReply(e.customer_id, e.message_id, e.sent_at, hours), store=store, history=history)
                if assign_on_reply_enabled() and outcome.conversation.assignee is None:
                    self._assign_on_reply(e, r, routes, store)
        elif isinstance(e, ConversationSnoozed):
            key = f"snooze:{e.snooze_id}"
            timers.cancel(kind=SNOOZE_TIMER, subject=str(e.customer_id), keep=key)
            timers.schedule(key=key, kind=SNOOZE_TIMER, subject=str(e.customer_id), due_at=e.until,
                            payload={"customer_id": str(e.customer_id), "snooze_id": str(e.snooze_id)})
            routes.set(e.customer_id, resolved=False)
        elif isinstance(e, ConversationStatusChanged | ConversationReopened):
            timers.cancel(kind=SNOOZE_TIMER, subject=str(e.customer_id))
            routes.set(e.customer_id, resolved=isinstance(e, ConversationStatusChanged) and e.status == Status.RESOLVED)
            if isinstance(e, ConversationReopened) and e.reason == ReopenedBecause.SNOOZE_EXPIRED:
                self._auto_assign(e.customer_id, f"reopened:{r.event_id}", r, routes, store)
        elif isinstance(e, FirstResponseClockStarted):
            if e.due_at is not None:
                timers.schedule(
                    key=first_response_key(e.customer_id, e.message_id), kind=FIRST_RESPONSE_TIMER,
                    subject=str(e.customer_id), due_at=e.due_at,
                    payload={"customer_id": str(e.customer_id), "period_id": str(e.message_id)},
                )
        elif isinstance(e, FirstResponseClockStopped):
            # By key, not by subject: a period that starts later in the batch keeps its timer.
            ended.append(first_response_key(e.customer_id, e.period_id))
        elif isinstance(e, ConversationAssigned):
            routes.set(e.customer_id, assignee_id=e.assignee_id)

    def _assign_on_reply(
        self, e: MessageSent, r: RecordedEvent, routes: Routes, store: handlers.Streams,
    ) -> None:
        """The replying agent takes the conversation (the aggregate decides
        against its latest state: a claim that got there first stands). The
        event's id comes from the reply, so a batch redone appends it once."""
        outcome = handlers.assign_on_reply(
            AssignOnReply(e.customer_id, Agent(e.sender_id, e.sender_name), e.message_id), now=r.recorded_at,
            store=store)
        conv = outcome.conversation
        routes.set(e.customer_id, assignee_id=conv.assignee.id if conv.assignee else None)

    def _auto_assign(
        self, customer_id: uuid.UUID, cause: str, r: RecordedEvent, routes: Routes, store: handlers.Streams,
    ) -> None:
        if not auto_assign_enabled():
            return
        routes.save()  # the loads next_agent counts include this batch's changes so far
        # With a partitioned pipeline every partition's workflow assigns agents:
        # one decision at a time, each seeing the others' committed loads.
        take_assignment_lock()
        agent = next_agent()
        if agent is None:
            return  # nobody online with room: it waits in Unassigned
        outcome = handlers.auto_assign(AutoAssign(customer_id, agent), cause=cause, now=r.recorded_at, store=store)
        if outcome.appended:
            # Counted now, not when the event comes back: the next decision of this batch sees it.
            routes.set(customer_id, assignee_id=agent.id)
            AgentTurn.objects.update_or_create(agent_id=agent.id, defaults={"last_turn": r.position})

    def reset(self) -> None:
        """Its state is decisions already acted on, not a view: a rebuild does not redo them."""

    async def after_commit(self, effects: Any) -> None:
        return None


class Routes:
    """The ``Routing`` rows of one batch's conversations: read in one query,
    changed in memory, and only the rows that changed written back, in one
    statement, in the batch's transaction.

    Most events leave a conversation's routing as it was (a customer's
    second message to an open, assigned conversation), so the common batch
    writes nothing here. The group's checkpoint lock makes this process
    manager the only writer of these rows while it holds the batch.
    """

    def __init__(self, rows: dict[uuid.UUID, Routing]) -> None:
        self.rows = rows
        self.dirty: set[uuid.UUID] = set()

    @classmethod
    def of(cls, batch: Batch) -> Routes:
        ids = {e.customer_id for e in (r.event for r in batch.events) if hasattr(e, "customer_id")}
        return cls(Routing.objects.in_bulk(list(ids)) if ids else {})

    def set(self, customer_id: uuid.UUID, **changes: Any) -> None:
        row = self.rows.get(customer_id)
        if row is None:
            row = self.rows[customer_id] = Routing(customer_id=customer_id)
            self.dirty.add(customer_id)
        for name, value in changes.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                self.dirty.add(customer_id)

    def save(self) -> None:
        if not self.dirty:
            return
        Routing.objects.bulk_create(
            [self.rows[c] for c in sorted(self.dirty)], update_conflicts=True,
            unique_fields=["customer_id"], update_fields=["assignee_id", "resolved"],
        )
        self.dirty.clear()


def take_assignment_lock() -> None:
    """Hold the round-robin's lock until the transaction ends (PostgreSQL; SQLite has one writer).

    The loads ``next_agent`` counts are the committed ``Routing`` rows plus
    this transaction's own: two partitions deciding at once would each miss
    the other's assignment and could put an agent above their capacity."""
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("SELECT pg_advisory_xact_lock(hashtext('parley:auto-assign'))")


def load(agent_id: str) -> int:
    """Unresolved conversations the agent holds."""
    return Routing.objects.filter(assignee_id=agent_id, resolved=False).count()


def next_agent() -> Agent | None:
    """The online agent below capacity who got a conversation least recently (ties: by id)."""
    online = agent_directory().online()
    if not online:
        return None
    turns = dict(AgentTurn.objects.filter(agent_id__in=[a.id for a in online]).values_list("agent_id", "last_turn"))
    limit = capacity()
    for agent in sorted(online, key=lambda a: (turns.get(a.id, -1), a.id)):
        if load(agent.id) < limit:
            return agent
    return None
