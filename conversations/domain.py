"""The conversation aggregate: its workflow state and its decisions. Plain Python only.

One aggregate per customer (stream ``conversation-<customer_id>``): every
rule about a conversation's workflow (who holds it, its status, its snooze,
its waiting period, its notes) is decided against one stream, so one
optimistic append settles every race between two agents, an agent and the
process manager, or a timer and a customer (docs/workflow.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace

from conversations.commands import (
    MAX_LABELS,
    MAX_SNOOZE,
    AddNote,
    Agent,
    Assign,
    AssignOnReply,
    AutoAssign,
    ChangeLabels,
    CheckFirstResponse,
    Claim,
    EndSnooze,
    MarkRead,
    MarkUnread,
    Rate,
    RecordAgentReply,
    RecordCustomerMessage,
    SetStatus,
    Snooze,
    clean_note,
)
from conversations.errors import (
    AlreadyAssigned,
    AssigneeChanged,
    InvalidLabel,
    InvalidSnooze,
    InvalidStatus,
    NoteIdConflict,
    NotResolved,
    TooManyLabels,
)
from conversations.events import (
    AssignedBy,
    ConversationAssigned,
    ConversationLabelsChanged,
    ConversationMarkedRead,
    ConversationMarkedUnread,
    ConversationRated,
    ConversationReopened,
    ConversationSnoozed,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
    FirstResponseSlaBreached,
    NoteAdded,
    ReopenedBecause,
    Status,
)
from conversations.hours import business_seconds
from eventstore.events import DomainEvent

#: The statuses an agent sets directly (snoozed comes with a time: Snooze).
SETTABLE = frozenset({Status.OPEN, Status.PENDING, Status.RESOLVED})


@dataclass(frozen=True)
class Conversation:
    """State of one conversation, rebuilt by folding its events with ``apply``."""

    customer_id: uuid.UUID
    status: Status = Status.OPEN
    assignee: Agent | None = None
    snooze_id: uuid.UUID | None = None
    snoozed_until: dt.datetime | None = None
    #: The waiting period (the message that started it), if the customer waits for a reply.
    period_id: uuid.UUID | None = None
    waiting_since: dt.datetime | None = None
    first_response_due_at: dt.datetime | None = None
    sla_breached: bool = False
    #: The notes by id: what a repeated AddNote is compared with.
    notes: dict[uuid.UUID, NoteAdded] = field(default_factory=dict)
    labels: frozenset[str] = frozenset()
    #: The agents for whom it is marked unread.
    unread_for: frozenset[str] = frozenset()
    #: The log position of the last status change: a customer message
    #: before it (the process manager reacts later) does not undo it.
    status_position: int = 0
    #: How many times it was resolved: the current (or last) resolved period's number.
    resolutions: int = 0
    #: The last rating, and the period it rated.
    rating: ConversationRated | None = None
    version: int = 0

    # -- replay

    def apply(self, evt: DomainEvent, position: int = 0) -> Conversation:
        s = replace(self, version=self.version + 1)
        if isinstance(evt, ConversationStatusChanged | ConversationSnoozed | ConversationReopened):
            s = replace(s, status_position=position)
        if isinstance(evt, ConversationAssigned):
            agent = Agent(evt.assignee_id, evt.assignee_name) if evt.assignee_id is not None else None
            return replace(s, assignee=agent)
        if isinstance(evt, ConversationStatusChanged):
            resolutions = s.resolutions + (evt.status == Status.RESOLVED.value)
            return replace(s, status=Status(evt.status), snooze_id=None, snoozed_until=None, resolutions=resolutions)
        if isinstance(evt, ConversationSnoozed):
            return replace(s, status=Status.SNOOZED, snooze_id=evt.snooze_id, snoozed_until=evt.until)
        if isinstance(evt, ConversationReopened):
            return replace(s, status=Status.OPEN, snooze_id=None, snoozed_until=None)
        if isinstance(evt, FirstResponseClockStarted):
            return replace(s, period_id=evt.message_id, waiting_since=evt.since,
                           first_response_due_at=evt.due_at, sla_breached=False)
        if isinstance(evt, FirstResponseClockStopped):
            return replace(s, period_id=None, waiting_since=None, first_response_due_at=None, sla_breached=False)
        if isinstance(evt, FirstResponseSlaBreached):
            return replace(s, sla_breached=True)
        if isinstance(evt, NoteAdded):
            return replace(s, notes={**self.notes, evt.note_id: evt})
        if isinstance(evt, ConversationLabelsChanged):
            return replace(s, labels=frozenset(evt.labels))
        if isinstance(evt, ConversationMarkedUnread):
            return replace(s, unread_for=self.unread_for | {evt.agent_id})
        if isinstance(evt, ConversationMarkedRead):
            return replace(s, unread_for=self.unread_for - {evt.agent_id})
        if isinstance(evt, ConversationRated):
            return replace(s, rating=evt)
        raise TypeError(f"not a conversation event: {evt!r}")

    @classmethod
    def replay(cls, customer_id: uuid.UUID, events: list[tuple[DomainEvent, int]]) -> Conversation:
        """The state after these (event, log position) pairs."""
        state = cls(customer_id)
        for evt, position in events:
            state = state.apply(evt, position)
        return state

    # -- decisions of agents

    def claim(self, cmd: Claim, now: dt.datetime) -> list[DomainEvent]:
        if self.assignee is not None:
            if self.assignee.id == cmd.agent.id:
                return []
            raise AlreadyAssigned(f"the conversation is assigned to {self.assignee.name or self.assignee.id}")
        return [self._assigned(cmd.agent, AssignedBy.CLAIM, cmd.agent.label, now)]

    def assign(self, cmd: Assign, now: dt.datetime) -> list[DomainEvent]:
        current = self.assignee.id if self.assignee is not None else None
        if current != cmd.expected:
            raise AssigneeChanged(f"the assignee is {current!r}, not {cmd.expected!r}")
        new = cmd.assignee.id if cmd.assignee is not None else None
        if new == current:
            return []
        return [self._assigned(cmd.assignee, AssignedBy.ASSIGN, cmd.by.label, now)]

    def set_status(self, cmd: SetStatus, now: dt.datetime) -> list[DomainEvent]:
        try:
            status = Status(cmd.status)
        except ValueError:
            status = None
        if status not in SETTABLE:
            raise InvalidStatus("status must be one of open, pending, resolved (snooze with /snooze)")
        assert status is not None
        if status == self.status:
            return []
        out: list[DomainEvent] = [ConversationStatusChanged(
            customer_id=self.customer_id, status=status.value, previous_status=self.status.value,
            actor=cmd.by.label, at=now,
        )]
        if status is Status.RESOLVED:
            out += self._stop_clock(None, now)
        return out

    def snooze(self, cmd: Snooze, now: dt.datetime) -> list[DomainEvent]:
        if cmd.until.tzinfo is None:
            raise InvalidSnooze("'until' must carry a UTC offset")
        if cmd.until <= now:
            raise InvalidSnooze("'until' must be in the future")
        if cmd.until > now + MAX_SNOOZE:
            raise InvalidSnooze("'until' must be within a year")
        return [ConversationSnoozed(
            customer_id=self.customer_id, snooze_id=uuid.uuid4(), until=cmd.until.astimezone(dt.timezone.utc),
            previous_status=self.status.value, actor=cmd.by.label, at=now,
        )]

    def add_note(self, cmd: AddNote, now: dt.datetime) -> list[DomainEvent]:
        body = clean_note(cmd.body)
        stored = self.notes.get(cmd.note_id)
        if stored is not None:
            if (stored.author_id, stored.body) != (cmd.author.id, body):
                raise NoteIdConflict(f"the note id {cmd.note_id} is already used by another note")
            return []
        return [NoteAdded(note_id=cmd.note_id, customer_id=self.customer_id, author_id=cmd.author.id,
                          author_name=cmd.author.name, body=body, added_at=now)]

    def change_labels(self, cmd: ChangeLabels, now: dt.datetime) -> list[DomainEvent]:
        both = sorted(set(cmd.add) & set(cmd.remove))
        if both:
            raise InvalidLabel(f"the label {both[0]!r} is both added and removed")
        labels = (self.labels | set(cmd.add)) - set(cmd.remove)
        if labels == self.labels:
            return []
        if len(labels) > MAX_LABELS:
            raise TooManyLabels(f"a conversation carries at most {MAX_LABELS} labels")
        return [ConversationLabelsChanged(
            customer_id=self.customer_id, added=tuple(sorted(labels - self.labels)),
            removed=tuple(sorted(self.labels - labels)), labels=tuple(sorted(labels)), actor=cmd.by.label, at=now,
        )]

    def mark_unread(self, cmd: MarkUnread, now: dt.datetime) -> list[DomainEvent]:
        if cmd.agent.id in self.unread_for:
            return []
        return [ConversationMarkedUnread(customer_id=self.customer_id, agent_id=cmd.agent.id, at=now)]

    def mark_read(self, cmd: MarkRead, now: dt.datetime) -> list[DomainEvent]:
        if cmd.agent.id not in self.unread_for:
            return []
        return [ConversationMarkedRead(customer_id=self.customer_id, agent_id=cmd.agent.id, at=now)]

    # -- decisions of the customer

    def rate(self, cmd: Rate, now: dt.datetime) -> list[DomainEvent]:
        """Rate the resolved period: one rating per period, a new one replaces it, the same one changes nothing."""
        if self.status is not Status.RESOLVED:
            raise NotResolved("only a resolved conversation can be rated")
        last = self.rating
        if last is not None and last.resolution == self.resolutions and (last.score, last.comment) == (
                cmd.score, cmd.comment):
            return []
        return [ConversationRated(customer_id=self.customer_id, resolution=self.resolutions, score=cmd.score,
                                  comment=cmd.comment, at=now)]

    # -- decisions of the process manager and the timers

    def record_customer_message(self, cmd: RecordCustomerMessage, now: dt.datetime) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        if self.status_position > cmd.position:
            # An agent changed the status after this message was written: that
            # decision saw the message, and stands (no reopen, no new clock if resolved).
            if self.status is Status.RESOLVED:
                return []
        elif self.status is not Status.OPEN:
            out.append(ConversationReopened(
                customer_id=self.customer_id, reason=ReopenedBecause.CUSTOMER_MESSAGE.value,
                previous_status=self.status.value, cause_id=cmd.message_id, at=now,
            ))
        if self.period_id is None:
            due = None
            if cmd.first_response is not None:
                due = cmd.hours.add(cmd.sent_at, cmd.first_response) if cmd.hours else cmd.sent_at + cmd.first_response
            out.append(FirstResponseClockStarted(
                customer_id=self.customer_id, message_id=cmd.message_id, since=cmd.sent_at, due_at=due,
            ))
        return out

    def record_agent_reply(self, cmd: RecordAgentReply, now: dt.datetime) -> list[DomainEvent]:
        if self.period_id is None or self.waiting_since is None:
            return []
        waited = business_seconds(cmd.hours, self.waiting_since, now)
        return [FirstResponseClockStopped(customer_id=self.customer_id, period_id=self.period_id,
                                          message_id=cmd.message_id, at=now, business_seconds=waited)]

    def assign_on_reply(self, cmd: AssignOnReply, now: dt.datetime) -> list[DomainEvent]:
        """The replying agent takes a conversation nobody holds, whatever its
        status: answering it is handling it. Held by anyone (a claim that got
        there first included), it stays theirs."""
        if self.assignee is not None:
            return []
        return [self._assigned(cmd.agent, AssignedBy.REPLY, cmd.agent.label, now)]

    def auto_assign(self, cmd: AutoAssign, now: dt.datetime) -> list[DomainEvent]:
        if self.assignee is not None or self.status is Status.RESOLVED:
            return []
        return [self._assigned(cmd.agent, AssignedBy.AUTO, "system", now)]

    def end_snooze(self, cmd: EndSnooze, now: dt.datetime) -> list[DomainEvent]:
        if self.status is not Status.SNOOZED or self.snooze_id != cmd.snooze_id:
            return []  # woken already, or snoozed again since: this timer is moot
        return [ConversationReopened(
            customer_id=self.customer_id, reason=ReopenedBecause.SNOOZE_EXPIRED.value,
            previous_status=self.status.value, cause_id=cmd.snooze_id, at=now,
        )]

    def check_first_response(self, cmd: CheckFirstResponse, now: dt.datetime) -> list[DomainEvent]:
        if self.period_id != cmd.period_id or self.sla_breached or self.first_response_due_at is None:
            return []  # answered in time, or already recorded for this period
        if now < self.first_response_due_at:
            return []
        return [FirstResponseSlaBreached(
            customer_id=self.customer_id, period_id=cmd.period_id, due_at=self.first_response_due_at, at=now,
        )]

    # -- helpers

    def _assigned(self, agent: Agent | None, by: AssignedBy, actor: str, now: dt.datetime) -> ConversationAssigned:
        return ConversationAssigned(
            customer_id=self.customer_id, assignee_id=agent.id if agent else None,
            assignee_name=agent.name if agent else "",
            previous_assignee_id=self.assignee.id if self.assignee else None, by=by.value, actor=actor, at=now,
        )

    def _stop_clock(self, message_id: uuid.UUID | None, now: dt.datetime) -> list[DomainEvent]:
        if self.period_id is None:
            return []
        return [FirstResponseClockStopped(customer_id=self.customer_id, period_id=self.period_id,
                                          message_id=message_id, at=now)]
