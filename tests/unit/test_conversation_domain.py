"""Rules of the Conversation aggregate, without a database (docs/workflow.md, docs/api.md).

The tests drive the aggregate the way conversations/handlers.py does:
decide on the current state, then append the returned events at the next
log positions and fold them into the state. A customer's message takes a
position in the log when it is written, and the process manager records it
on the conversation later (``Stream.writes`` then ``record_customer_message``).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.commands import (
    MAX_LABEL_CHARS,
    MAX_LABELS,
    MAX_NOTE_CHARS,
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
    RecordAgentReply,
    RecordCustomerMessage,
    SetStatus,
    Snooze,
    clean_label,
)
from conversations.domain import Conversation
from conversations.errors import (
    AlreadyAssigned,
    AssigneeChanged,
    ConversationError,
    InvalidLabel,
    InvalidNote,
    InvalidSnooze,
    InvalidStatus,
    NoteIdConflict,
    TooManyLabels,
)
from conversations.events import (
    ConversationAssigned,
    ConversationLabelsChanged,
    ConversationMarkedRead,
    ConversationMarkedUnread,
    ConversationReopened,
    ConversationSnoozed,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
    FirstResponseSlaBreached,
    NoteAdded,
    Status,
)
from eventstore.events import DomainEvent, decode, encode

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)
CUSTOMER_ID = uuid.uuid4()
GRACE = Agent("7", "Grace")
LINUS = Agent("8", "Linus")
#: The first-response target of these tests (PARLEY_FIRST_RESPONSE_SECONDS).
TARGET = dt.timedelta(minutes=5)
TICK = dt.timedelta(microseconds=1)

Decision = Callable[[Conversation, Any, dt.datetime], list[DomainEvent]]


class Stream:
    """One conversation's stream as the handlers keep it: decide on the state, append at the next positions."""

    def __init__(self) -> None:
        self.state = Conversation(CUSTOMER_ID)
        self.history: list[tuple[DomainEvent, int]] = []
        self.position = 0  # the log's last position (chat's messages take positions too)
        self.now = NOW

    def decide(self, decision: Decision, cmd: Any, *, at: dt.datetime | None = None) -> list[DomainEvent]:
        events = decision(self.state, cmd, at or self.now)
        for evt in events:
            self.position += 1
            self.history.append((evt, self.position))
            self.state = self.state.apply(evt, self.position)
        return events

    def writes(self, target: dt.timedelta | None = TARGET) -> RecordCustomerMessage:
        """A customer's message written to the log now; the process manager records it later."""
        self.position += 1
        return RecordCustomerMessage(CUSTOMER_ID, uuid.uuid4(), self.now, target, self.position)

    def customer_message(self, target: dt.timedelta | None = TARGET) -> list[DomainEvent]:
        """A customer's message, recorded at once (as the handler does: at its sent_at)."""
        cmd = self.writes(target)
        return self.decide(Conversation.record_customer_message, cmd, at=cmd.sent_at)

    def later(self, delta: dt.timedelta) -> None:
        self.now += delta


def claim(agent: Agent) -> Claim:
    return Claim(CUSTOMER_ID, agent)


def assign(to: Agent | None, expected: str | None, by: Agent = GRACE) -> Assign:
    return Assign(CUSTOMER_ID, to, expected, by)


def set_status(value: str, by: Agent = GRACE) -> SetStatus:
    return SetStatus(CUSTOMER_ID, value, by)


def snooze(until: dt.datetime, by: Agent = GRACE) -> Snooze:
    return Snooze(CUSTOMER_ID, until, by)


def note(note_id: uuid.UUID, body: str, author: Agent = GRACE) -> AddNote:
    return AddNote(note_id, CUSTOMER_ID, author, body)


def reply() -> RecordAgentReply:
    return RecordAgentReply(CUSTOMER_ID, uuid.uuid4(), NOW)


def replied(agent: Agent) -> AssignOnReply:
    return AssignOnReply(CUSTOMER_ID, agent, uuid.uuid4())


def relabel(add: tuple[str, ...] = (), remove: tuple[str, ...] = (), by: Agent = GRACE) -> ChangeLabels:
    return ChangeLabels(CUSTOMER_ID, add, remove, by)


def auto(agent: Agent) -> AutoAssign:
    return AutoAssign(CUSTOMER_ID, agent)


def end_snooze(snooze_id: uuid.UUID) -> EndSnooze:
    return EndSnooze(CUSTOMER_ID, snooze_id)


def check(period_id: uuid.UUID) -> CheckFirstResponse:
    return CheckFirstResponse(CUSTOMER_ID, period_id)


def stored(history: list[tuple[DomainEvent, int]]) -> list[tuple[DomainEvent, int]]:
    """The history as read back from the log: each event through its JSON payload."""
    return [(decode(e.event_type, e.schema_version, json.loads(json.dumps(encode(e)))), p) for e, p in history]


def held_by(agent: Agent) -> Stream:
    s = Stream()
    s.decide(Conversation.claim, claim(agent))
    return s


def with_status(value: str) -> Stream:
    """A conversation the customer wrote to, then set to ``value`` by an agent (snoozed: for a day)."""
    s = Stream()
    s.customer_message()
    if value == "snoozed":
        s.decide(Conversation.snooze, snooze(NOW + dt.timedelta(days=1)))
    elif value != "open":
        s.decide(Conversation.set_status, set_status(value))
    return s


def types(events: list[DomainEvent]) -> list[type]:
    return [type(e) for e in events]


# -- a new conversation and claim ----------------------------------------------------------------


def test_a_new_conversation_is_open_unassigned_and_nobody_is_waiting():
    conv = Conversation(CUSTOMER_ID)
    assert (conv.status, conv.assignee, conv.period_id, conv.snooze_id, conv.version) == (
        Status.OPEN, None, None, None, 0)


def test_claiming_an_unassigned_conversation_assigns_it_to_the_caller():
    s = Stream()
    [evt] = s.decide(Conversation.claim, claim(GRACE))
    assert isinstance(evt, ConversationAssigned)
    assert (evt.assignee_id, evt.assignee_name, evt.previous_assignee_id) == ("7", "Grace", None)
    assert (evt.by, evt.actor, evt.at, evt.customer_id) == ("claim", "agent:7", NOW, CUSTOMER_ID)
    assert s.state.assignee == GRACE


def test_claiming_an_assigned_conversation_is_refused_with_already_assigned():
    s = held_by(GRACE)
    with pytest.raises(AlreadyAssigned) as refused:
        s.state.claim(claim(LINUS), NOW)
    assert (refused.value.code, refused.value.status) == ("already_assigned", 409)
    assert "Grace" in refused.value.detail


def test_claiming_your_own_conversation_changes_nothing():
    s = held_by(GRACE)
    assert s.state.claim(claim(GRACE), NOW) == []
    assert s.state.claim(claim(Agent("7", "Grace H.")), NOW) == []  # the same agent id, renamed since


def test_a_conversation_unassigned_again_can_be_claimed_by_another_agent():
    s = held_by(GRACE)
    s.decide(Conversation.assign, assign(None, "7"))
    [evt] = s.decide(Conversation.claim, claim(LINUS))
    assert (evt.assignee_id, evt.previous_assignee_id) == ("8", None)
    assert s.state.assignee == LINUS


def test_of_two_claims_decided_on_the_same_state_only_the_first_is_appended():
    s = Stream()
    seen = s.state
    s.decide(Conversation.claim, claim(GRACE))
    assert len(seen.claim(claim(LINUS), NOW)) == 1  # decided on the stale state: its append conflicts
    with pytest.raises(AlreadyAssigned):  # decided again on the stream
        s.state.claim(claim(LINUS), NOW)


# -- assign: compare-and-set -------------------------------------------------------------------


def test_assigning_with_the_current_assignee_expected_hands_the_conversation_over():
    s = held_by(GRACE)
    [evt] = s.decide(Conversation.assign, assign(LINUS, expected="7", by=GRACE))
    assert isinstance(evt, ConversationAssigned)
    assert (evt.assignee_id, evt.assignee_name, evt.previous_assignee_id) == ("8", "Linus", "7")
    assert (evt.by, evt.actor) == ("assign", "agent:7")
    assert s.state.assignee == LINUS


def test_assigning_an_unassigned_conversation_expects_nobody():
    s = Stream()
    [evt] = s.decide(Conversation.assign, assign(LINUS, expected=None, by=GRACE))
    assert (evt.assignee_id, evt.previous_assignee_id, evt.actor) == ("8", None, "agent:7")
    assert s.state.assignee == LINUS


@pytest.mark.parametrize(("holder", "expected"), [(None, "7"), (GRACE, None), (GRACE, "8")])
def test_an_assignment_whose_expected_assignee_is_not_the_current_one_is_refused_with_assignee_changed(
    holder, expected,
):
    s = held_by(holder) if holder else Stream()
    with pytest.raises(AssigneeChanged) as refused:
        s.state.assign(assign(LINUS, expected=expected), NOW)
    assert (refused.value.code, refused.value.status) == ("assignee_changed", 409)


def test_assigning_to_nobody_unassigns_the_conversation():
    s = held_by(GRACE)
    [evt] = s.decide(Conversation.assign, assign(None, expected="7", by=LINUS))
    assert (evt.assignee_id, evt.assignee_name, evt.previous_assignee_id, evt.actor) == (None, "", "7", "agent:8")
    assert s.state.assignee is None


def test_assigning_to_the_current_assignee_appends_nothing():
    assert held_by(GRACE).state.assign(assign(Agent("7"), expected="7", by=LINUS), NOW) == []
    assert Stream().state.assign(assign(None, expected=None), NOW) == []


def test_of_two_assignments_expecting_the_same_assignee_only_the_first_goes_through():
    s = held_by(GRACE)
    seen = s.state
    s.decide(Conversation.assign, assign(LINUS, expected="7"))
    third = Agent("9", "Ada")
    assert len(seen.assign(assign(third, expected="7"), NOW)) == 1  # decided on the stale state: conflicts
    with pytest.raises(AssigneeChanged):  # decided again on the stream
        s.state.assign(assign(third, expected="7"), NOW)
    assert s.state.assignee == LINUS


# -- status ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "after"), [
    ("open", "pending"), ("open", "resolved"), ("pending", "open"), ("pending", "resolved"),
    ("resolved", "open"), ("resolved", "pending"),
])
def test_an_agent_moves_a_conversation_between_open_pending_and_resolved(before, after):
    s = Stream()
    if before != "open":
        s.decide(Conversation.set_status, set_status(before))
    [evt] = s.decide(Conversation.set_status, set_status(after, by=LINUS))
    assert isinstance(evt, ConversationStatusChanged)
    assert (evt.status, evt.previous_status, evt.actor, evt.at) == (after, before, "agent:8", NOW)
    assert s.state.status == after


@pytest.mark.parametrize("value", ["open", "pending", "resolved"])
def test_setting_the_status_a_conversation_already_has_appends_nothing(value):
    s = with_status(value)
    assert s.state.set_status(set_status(value), NOW) == []


@pytest.mark.parametrize("value", ["snoozed", "closed", "", "OPEN", " open"])
def test_snoozed_or_any_other_status_is_refused_with_invalid_status(value):
    with pytest.raises(InvalidStatus) as refused:
        Stream().state.set_status(set_status(value), NOW)
    assert (refused.value.code, refused.value.status) == ("invalid_status", 400)


@pytest.mark.parametrize("value", ["open", "pending", "resolved"])
def test_a_status_change_ends_a_snooze_and_its_timer_then_does_nothing(value):
    s = with_status("snoozed")
    snooze_id = s.state.snooze_id
    [evt, *_] = s.decide(Conversation.set_status, set_status(value))
    assert (evt.status, evt.previous_status) == (value, "snoozed")
    assert (s.state.status, s.state.snooze_id, s.state.snoozed_until) == (value, None, None)
    assert s.state.end_snooze(end_snooze(snooze_id), NOW + dt.timedelta(days=1)) == []


def test_resolving_ends_the_waiting_period_so_no_breach_follows():
    s = Stream()
    [started] = s.customer_message()
    status_changed, stopped = s.decide(Conversation.set_status, set_status("resolved"))
    assert isinstance(status_changed, ConversationStatusChanged)
    assert isinstance(stopped, FirstResponseClockStopped)
    assert (stopped.period_id, stopped.message_id, stopped.at) == (started.message_id, None, NOW)
    assert (s.state.period_id, s.state.first_response_due_at) == (None, None)
    assert s.state.check_first_response(check(started.message_id), started.due_at + dt.timedelta(hours=1)) == []


def test_resolving_with_nobody_waiting_records_only_the_status_change():
    assert types(Stream().state.set_status(set_status("resolved"), NOW)) == [ConversationStatusChanged]


def test_setting_pending_keeps_the_customer_waiting():
    s = Stream()
    [started] = s.customer_message()
    assert types(s.decide(Conversation.set_status, set_status("pending"))) == [ConversationStatusChanged]
    assert s.state.period_id == started.message_id
    assert len(s.state.check_first_response(check(started.message_id), started.due_at)) == 1


# -- snooze ------------------------------------------------------------------------------------


def test_snoozing_records_a_snooze_until_the_given_instant_in_utc():
    s = with_status("pending")
    until = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    [evt] = s.decide(Conversation.snooze, snooze(until, by=LINUS))
    assert isinstance(evt, ConversationSnoozed)
    assert evt.until == until and evt.until.utcoffset() == dt.timedelta(0)
    assert (evt.previous_status, evt.actor, evt.at) == ("pending", "agent:8", NOW)
    assert (s.state.status, s.state.snooze_id, s.state.snoozed_until) == (Status.SNOOZED, evt.snooze_id, until)


def test_every_snooze_is_a_new_snooze_with_its_own_id():
    s = Stream()
    cmd = snooze(NOW + dt.timedelta(hours=1))
    [first] = s.decide(Conversation.snooze, cmd)
    [again] = s.decide(Conversation.snooze, cmd)
    assert first.snooze_id != again.snooze_id
    assert again.previous_status == "snoozed"
    assert s.state.snooze_id == again.snooze_id


@pytest.mark.parametrize("until", [NOW, NOW - TICK, NOW - dt.timedelta(days=1)])
def test_a_snooze_until_now_or_a_time_in_the_past_is_refused_with_invalid_snooze(until):
    with pytest.raises(InvalidSnooze) as refused:
        Stream().state.snooze(snooze(until), NOW)
    assert (refused.value.code, refused.value.status) == ("invalid_snooze", 400)


def test_a_snooze_until_a_time_without_a_utc_offset_is_refused():
    with pytest.raises(InvalidSnooze):
        Stream().state.snooze(snooze((NOW + dt.timedelta(hours=1)).replace(tzinfo=None)), NOW)


def test_a_snooze_may_last_up_to_the_maximum_and_no_longer():
    conv = Stream().state
    assert len(conv.snooze(snooze(NOW + MAX_SNOOZE), NOW)) == 1
    assert len(conv.snooze(snooze(NOW + TICK), NOW)) == 1
    with pytest.raises(InvalidSnooze):
        conv.snooze(snooze(NOW + MAX_SNOOZE + TICK), NOW)


def test_the_snooze_timer_reopens_the_snooze_it_names():
    s = with_status("snoozed")
    snooze_id = s.state.snooze_id
    [evt] = s.decide(Conversation.end_snooze, end_snooze(snooze_id), at=NOW + dt.timedelta(days=1))
    assert isinstance(evt, ConversationReopened)
    assert (evt.reason, evt.previous_status, evt.cause_id) == ("snooze_expired", "snoozed", snooze_id)
    assert evt.at == NOW + dt.timedelta(days=1)
    assert (s.state.status, s.state.snooze_id, s.state.snoozed_until) == (Status.OPEN, None, None)


def test_the_snooze_timer_fired_again_does_nothing():
    s = with_status("snoozed")
    snooze_id = s.state.snooze_id
    s.decide(Conversation.end_snooze, end_snooze(snooze_id))
    assert s.state.end_snooze(end_snooze(snooze_id), NOW + dt.timedelta(days=2)) == []


def test_the_timer_of_an_older_snooze_does_nothing_after_a_newer_snooze():
    s = with_status("snoozed")
    older = s.state.snooze_id
    [newer] = s.decide(Conversation.snooze, snooze(NOW + dt.timedelta(days=3)))
    assert s.state.end_snooze(end_snooze(older), NOW + dt.timedelta(days=1)) == []
    assert len(s.state.end_snooze(end_snooze(newer.snooze_id), NOW + dt.timedelta(days=3))) == 1


def test_the_snooze_timer_does_nothing_after_the_customer_reopened_the_conversation():
    s = with_status("snoozed")
    snooze_id = s.state.snooze_id
    s.later(dt.timedelta(minutes=1))
    s.customer_message()
    assert s.state.status is Status.OPEN
    assert s.state.end_snooze(end_snooze(snooze_id), NOW + dt.timedelta(days=1)) == []


def test_a_snooze_timer_for_a_conversation_not_snoozed_does_nothing():
    assert Stream().state.end_snooze(end_snooze(uuid.uuid4()), NOW) == []


# -- a customer's message --------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "snoozed", "resolved"])
def test_a_customer_message_reopens_a_pending_snoozed_or_resolved_conversation(status):
    s = with_status(status)
    s.decide(Conversation.record_agent_reply, reply())  # nobody waits now
    s.later(dt.timedelta(minutes=1))
    cmd = s.writes()
    reopened, started = s.decide(Conversation.record_customer_message, cmd, at=cmd.sent_at)
    assert isinstance(reopened, ConversationReopened)
    assert (reopened.reason, reopened.previous_status, reopened.cause_id) == ("customer_message", status, cmd.message_id)
    assert isinstance(started, FirstResponseClockStarted) and started.message_id == cmd.message_id
    assert (s.state.status, s.state.snooze_id, s.state.snoozed_until) == (Status.OPEN, None, None)


def test_a_customer_message_to_an_open_conversation_only_starts_the_clock():
    assert types(Stream().customer_message()) == [FirstResponseClockStarted]


def test_the_message_that_starts_a_waiting_period_names_it_and_sets_its_due_time():
    s = Stream()
    cmd = s.writes()
    [evt] = s.decide(Conversation.record_customer_message, cmd, at=NOW + dt.timedelta(seconds=3))
    assert (evt.message_id, evt.since, evt.due_at) == (cmd.message_id, cmd.sent_at, cmd.sent_at + TARGET)
    assert (s.state.period_id, s.state.waiting_since, s.state.first_response_due_at, s.state.sla_breached) == (
        cmd.message_id, NOW, NOW + TARGET, False)


def test_later_customer_messages_in_the_same_waiting_period_change_nothing():
    s = Stream()
    [started] = s.customer_message()
    s.later(dt.timedelta(minutes=2))
    assert s.customer_message() == []
    assert (s.state.period_id, s.state.first_response_due_at) == (started.message_id, started.due_at)


def test_recording_the_same_customer_message_again_appends_nothing():
    s = with_status("resolved")
    s.later(dt.timedelta(minutes=1))
    cmd = s.writes()
    assert len(s.decide(Conversation.record_customer_message, cmd, at=cmd.sent_at)) == 2
    assert s.state.record_customer_message(cmd, cmd.sent_at) == []


def test_without_a_first_response_target_the_customer_waits_with_no_due_time_and_no_breach():
    s = Stream()
    [started] = s.customer_message(target=None)
    assert started.due_at is None and s.state.period_id == started.message_id
    assert s.state.check_first_response(check(started.message_id), NOW + dt.timedelta(days=30)) == []


@pytest.mark.parametrize("status", ["pending", "snoozed"])
def test_a_message_written_before_an_agent_set_pending_or_snoozed_does_not_reopen_but_the_customer_waits(status):
    s = Stream()
    cmd = s.writes()  # the agent sees the message, then sets the status; the process manager reacts after
    if status == "snoozed":
        s.decide(Conversation.snooze, snooze(NOW + dt.timedelta(days=1)))
    else:
        s.decide(Conversation.set_status, set_status(status))
    assert types(s.decide(Conversation.record_customer_message, cmd, at=cmd.sent_at)) == [FirstResponseClockStarted]
    assert s.state.status == status and s.state.period_id == cmd.message_id


def test_a_message_written_before_an_agent_resolved_the_conversation_changes_nothing():
    s = Stream()
    cmd = s.writes()
    s.decide(Conversation.set_status, set_status("resolved"))
    assert s.state.record_customer_message(cmd, cmd.sent_at) == []


def test_a_message_written_after_the_status_change_reopens_even_if_recorded_with_an_older_one():
    s = Stream()
    early = s.writes()
    s.decide(Conversation.set_status, set_status("resolved"))
    late = s.writes()
    assert s.decide(Conversation.record_customer_message, early, at=early.sent_at) == []
    reopened, _ = s.decide(Conversation.record_customer_message, late, at=late.sent_at)
    assert (reopened.cause_id, s.state.status, s.state.period_id) == (late.message_id, Status.OPEN, late.message_id)


# -- an agent's reply --------------------------------------------------------------------------


def test_an_agent_reply_stops_the_first_response_clock_of_the_waiting_period():
    s = with_status("pending")
    period = s.state.period_id
    cmd = reply()
    [evt] = s.decide(Conversation.record_agent_reply, cmd)
    assert isinstance(evt, FirstResponseClockStopped)
    assert (evt.period_id, evt.message_id, evt.at) == (period, cmd.message_id, NOW)
    assert (s.state.period_id, s.state.waiting_since, s.state.first_response_due_at) == (None, None, None)
    assert s.state.status is Status.PENDING


def test_an_agent_reply_while_nobody_waits_appends_nothing():
    s = Stream()
    assert s.state.record_agent_reply(reply(), NOW) == []
    s.customer_message()
    s.decide(Conversation.record_agent_reply, reply())
    assert s.state.record_agent_reply(reply(), NOW) == []


def test_the_next_customer_message_after_a_reply_starts_a_new_waiting_period():
    s = Stream()
    [first] = s.customer_message()
    s.decide(Conversation.record_agent_reply, reply())
    s.later(dt.timedelta(hours=1))
    [second] = s.customer_message()
    assert second.message_id != first.message_id
    assert (s.state.period_id, s.state.first_response_due_at) == (second.message_id, s.now + TARGET)


# -- first-response SLA ------------------------------------------------------------------------


def test_the_first_response_check_at_the_due_time_records_a_breach():
    s = Stream()
    [started] = s.customer_message()
    [evt] = s.decide(Conversation.check_first_response, check(started.message_id), at=started.due_at)
    assert isinstance(evt, FirstResponseSlaBreached)
    assert (evt.period_id, evt.due_at, evt.at) == (started.message_id, NOW + TARGET, NOW + TARGET)
    assert s.state.sla_breached is True


def test_a_first_response_check_before_the_due_time_records_nothing():
    s = Stream()
    [started] = s.customer_message()
    assert s.state.check_first_response(check(started.message_id), started.due_at - TICK) == []


def test_a_breach_is_recorded_once_per_waiting_period():
    s = Stream()
    [started] = s.customer_message()
    s.decide(Conversation.check_first_response, check(started.message_id), at=started.due_at)
    s.later(dt.timedelta(minutes=7))
    assert s.customer_message() == []  # still the same period
    assert s.state.check_first_response(check(started.message_id), started.due_at + dt.timedelta(hours=1)) == []


def test_the_check_of_a_period_answered_in_time_does_nothing():
    s = Stream()
    [started] = s.customer_message()
    s.decide(Conversation.record_agent_reply, reply())
    assert s.state.check_first_response(check(started.message_id), started.due_at) == []


def test_the_check_of_an_older_period_does_nothing_and_the_newer_period_can_breach_again():
    s = Stream()
    [first] = s.customer_message()
    s.decide(Conversation.check_first_response, check(first.message_id), at=first.due_at)
    s.decide(Conversation.record_agent_reply, reply())
    s.later(dt.timedelta(hours=1))
    [second] = s.customer_message()
    assert s.state.sla_breached is False
    assert s.state.check_first_response(check(first.message_id), second.due_at) == []
    [breach] = s.decide(Conversation.check_first_response, check(second.message_id), at=second.due_at)
    assert breach.period_id == second.message_id


def test_a_breached_period_still_ends_with_the_agents_reply():
    s = Stream()
    [started] = s.customer_message()
    s.decide(Conversation.check_first_response, check(started.message_id), at=started.due_at)
    [stopped] = s.decide(Conversation.record_agent_reply, reply())
    assert stopped.period_id == started.message_id
    assert (s.state.period_id, s.state.sla_breached) == (None, False)


def test_the_check_of_an_unknown_period_does_nothing():
    s = Stream()
    s.customer_message()
    assert s.state.check_first_response(check(uuid.uuid4()), NOW + dt.timedelta(days=1)) == []


# -- auto-assignment ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["open", "pending", "snoozed"])
def test_auto_assignment_gives_an_unassigned_unresolved_conversation_to_the_agent(status):
    s = with_status(status)
    [evt] = s.decide(Conversation.auto_assign, auto(LINUS))
    assert isinstance(evt, ConversationAssigned)
    assert (evt.assignee_id, evt.assignee_name, evt.previous_assignee_id) == ("8", "Linus", None)
    assert (evt.by, evt.actor) == ("auto", "system")
    assert s.state.assignee == LINUS


def test_auto_assignment_never_takes_a_conversation_someone_holds():
    assert held_by(GRACE).state.auto_assign(auto(LINUS), NOW) == []


def test_auto_assignment_leaves_a_resolved_conversation_unassigned():
    assert with_status("resolved").state.auto_assign(auto(LINUS), NOW) == []


def test_auto_assignment_issued_again_for_the_same_cause_appends_nothing():
    s = Stream()
    s.decide(Conversation.auto_assign, auto(LINUS))
    assert s.state.auto_assign(auto(LINUS), NOW) == []


# -- assignment on reply -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["open", "pending", "snoozed", "resolved"])
def test_an_agents_reply_to_an_unassigned_conversation_assigns_it_to_them_as_a_claim_would(status):
    s = with_status(status)
    [evt] = s.decide(Conversation.assign_on_reply, replied(LINUS))
    assert isinstance(evt, ConversationAssigned)
    assert (evt.assignee_id, evt.assignee_name, evt.previous_assignee_id) == ("8", "Linus", None)
    assert (evt.by, evt.actor) == ("reply", "agent:8")
    assert s.state.assignee == LINUS and s.state.status.value == status


def test_a_reply_never_takes_a_conversation_someone_holds():
    s = held_by(GRACE)
    assert s.state.assign_on_reply(replied(LINUS), NOW) == []
    assert s.state.assign_on_reply(replied(GRACE), NOW) == []


def test_of_a_claim_and_a_reply_decided_on_the_same_state_only_the_first_is_appended():
    s = Stream()
    stale = s.state
    s.decide(Conversation.claim, claim(GRACE))
    # The reply's assignment was decided on the state before the claim: its
    # append conflicts, and decided again it changes nothing.
    assert stale.assign_on_reply(replied(LINUS), NOW) != []
    assert s.state.assign_on_reply(replied(LINUS), NOW) == []
    assert s.state.assignee == GRACE


# -- labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "label"), [
    ("vip", "vip"), ("  VIP ", "vip"), ("Refund-Request", "refund-request"), ("tier_2", "tier_2"), ("Größe", "größe"),
    ("x" * MAX_LABEL_CHARS, "x" * MAX_LABEL_CHARS), ("2fa", "2fa"),
])
def test_a_label_is_kept_trimmed_and_in_lower_case(raw, label):
    assert clean_label(raw) == label


@pytest.mark.parametrize("raw", ["", "   ", "two words", "vip!", "-vip", "_vip", "x" * (MAX_LABEL_CHARS + 1), "a\x00b",
                                 "tab\there", "<b>", "a/b", "a:b"])
def test_a_label_that_is_not_one_is_refused_with_invalid_label(raw):
    with pytest.raises(InvalidLabel) as refused:
        clean_label(raw)
    assert (refused.value.code, refused.value.status) == ("invalid_label", 400)


def test_labels_are_added_and_removed_and_the_event_carries_the_whole_sorted_set():
    s = Stream()
    [evt] = s.decide(Conversation.change_labels, relabel(add=("vip", "billing")))
    assert isinstance(evt, ConversationLabelsChanged)
    assert (evt.added, evt.removed, evt.labels, evt.actor) == (("billing", "vip"), (), ("billing", "vip"), "agent:7")
    [evt] = s.decide(Conversation.change_labels, relabel(add=("urgent",), remove=("billing", "absent")))
    assert (evt.added, evt.removed, evt.labels) == (("urgent",), ("billing",), ("urgent", "vip"))
    assert s.state.labels == {"urgent", "vip"}


def test_a_change_that_leaves_the_labels_as_they_are_appends_nothing():
    s = Stream()
    s.decide(Conversation.change_labels, relabel(add=("vip",)))
    assert s.state.change_labels(relabel(add=("vip",), remove=("billing",)), NOW) == []
    assert s.state.change_labels(relabel(), NOW) == []


def test_a_label_both_added_and_removed_is_refused():
    with pytest.raises(InvalidLabel, match="both added and removed"):
        Conversation(CUSTOMER_ID).change_labels(relabel(add=("vip", "x"), remove=("vip",)), NOW)


def test_at_most_the_maximum_of_labels_and_removing_first_makes_room():
    s = Stream()
    full = tuple(f"l{i}" for i in range(MAX_LABELS))
    s.decide(Conversation.change_labels, relabel(add=full))
    with pytest.raises(TooManyLabels) as refused:
        s.state.change_labels(relabel(add=("one-more",)), NOW)
    assert (refused.value.code, refused.value.status) == ("too_many_labels", 400)
    [evt] = s.decide(Conversation.change_labels, relabel(add=("one-more",), remove=("l0",)))
    assert len(evt.labels) == MAX_LABELS


def test_labels_change_nothing_of_the_workflow():
    s = with_status("pending")
    before = dataclasses.replace(s.state, labels=frozenset(), version=0)
    s.decide(Conversation.change_labels, relabel(add=("vip",)))
    assert dataclasses.replace(s.state, labels=frozenset(), version=0) == before


# -- marked unread, per agent --------------------------------------------------------------------


def test_an_agent_marks_a_conversation_unread_for_themselves_and_reading_it_clears_their_mark_only():
    s = Stream()
    [evt] = s.decide(Conversation.mark_unread, MarkUnread(CUSTOMER_ID, GRACE))
    assert isinstance(evt, ConversationMarkedUnread) and evt.agent_id == "7"
    s.decide(Conversation.mark_unread, MarkUnread(CUSTOMER_ID, LINUS))
    assert s.state.unread_for == {"7", "8"}
    [evt] = s.decide(Conversation.mark_read, MarkRead(CUSTOMER_ID, GRACE))
    assert isinstance(evt, ConversationMarkedRead) and evt.agent_id == "7"
    assert s.state.unread_for == {"8"}


def test_marking_twice_or_reading_an_unmarked_conversation_appends_nothing():
    s = Stream()
    assert s.state.mark_read(MarkRead(CUSTOMER_ID, GRACE), NOW) == []
    s.decide(Conversation.mark_unread, MarkUnread(CUSTOMER_ID, GRACE))
    assert s.state.mark_unread(MarkUnread(CUSTOMER_ID, GRACE), NOW) == []


# -- notes -------------------------------------------------------------------------------------


def test_a_note_is_recorded_with_its_author_and_stripped_body():
    s = Stream()
    note_id = uuid.uuid4()
    [evt] = s.decide(Conversation.add_note, note(note_id, "  VIP: refund approved \n", author=LINUS))
    assert isinstance(evt, NoteAdded)
    assert (evt.note_id, evt.author_id, evt.author_name, evt.body, evt.added_at) == (
        note_id, "8", "Linus", "VIP: refund approved", NOW)
    assert s.state.notes == {note_id: evt}


def test_the_same_note_id_and_body_again_appends_nothing():
    s = Stream()
    note_id = uuid.uuid4()
    s.decide(Conversation.add_note, note(note_id, "call back"))
    assert s.state.add_note(note(note_id, " call back  "), NOW + dt.timedelta(minutes=1)) == []


@pytest.mark.parametrize(("body", "author"), [("call back later", GRACE), ("call back", LINUS)])
def test_a_note_id_used_for_another_note_is_refused_with_note_id_conflict(body, author):
    s = Stream()
    note_id = uuid.uuid4()
    s.decide(Conversation.add_note, note(note_id, "call back"))
    with pytest.raises(NoteIdConflict) as refused:
        s.state.add_note(note(note_id, body, author=author), NOW)
    assert (refused.value.code, refused.value.status) == ("note_id_conflict", 409)


@pytest.mark.parametrize("body", ["", " \n\t ", "x" * (MAX_NOTE_CHARS + 1), "a\x00b", "\ud800 lone"])
def test_an_empty_overlong_or_non_text_note_is_refused_with_invalid_note(body):
    with pytest.raises(InvalidNote) as refused:
        Stream().state.add_note(note(uuid.uuid4(), body), NOW)
    assert refused.value.code == "invalid_note"


def test_a_note_of_exactly_the_maximum_length_is_accepted():
    [evt] = Stream().state.add_note(note(uuid.uuid4(), "x" * MAX_NOTE_CHARS), NOW)
    assert len(evt.body) == MAX_NOTE_CHARS


def test_notes_change_nothing_of_the_workflow():
    s = with_status("pending")
    before = dataclasses.replace(s.state, notes={}, version=0)
    s.decide(Conversation.add_note, note(uuid.uuid4(), "hi"))
    assert dataclasses.replace(s.state, notes={}, version=0) == before


# -- replay ------------------------------------------------------------------------------------


def test_replaying_the_stored_events_rebuilds_the_same_state():
    s = Stream()
    s.customer_message()
    s.decide(Conversation.claim, claim(GRACE))
    s.decide(Conversation.add_note, note(uuid.uuid4(), "VIP"))
    s.decide(Conversation.snooze, snooze(NOW + dt.timedelta(hours=3)))
    s.later(dt.timedelta(minutes=10))
    s.decide(Conversation.check_first_response, check(s.state.period_id))
    s.decide(Conversation.assign, assign(LINUS, expected="7"))
    s.decide(Conversation.change_labels, relabel(add=("vip", "größe")))
    s.decide(Conversation.mark_unread, MarkUnread(CUSTOMER_ID, LINUS))
    assert s.state.sla_breached and s.state.status is Status.SNOOZED
    rebuilt = Conversation.replay(CUSTOMER_ID, stored(s.history))
    assert rebuilt == s.state
    assert rebuilt.labels == {"vip", "größe"} and rebuilt.unread_for == {"8"}
    assert rebuilt.version == len(s.history) == 8
    [snoozed_at] = [p for e, p in s.history if isinstance(e, ConversationSnoozed)]
    assert rebuilt.status_position == snoozed_at


def test_only_status_events_move_the_position_of_the_last_status_change():
    s = with_status("pending")
    pending_at = s.position
    s.decide(Conversation.claim, claim(GRACE))
    s.decide(Conversation.add_note, note(uuid.uuid4(), "hi"))
    s.decide(Conversation.record_agent_reply, reply())
    assert s.state.status_position == pending_at
    s.customer_message()  # written after the change: reopens
    assert s.state.status_position == s.position - 1  # the reopen, before the clock started


def test_replay_refuses_an_event_of_another_stream():
    with pytest.raises(TypeError):
        Conversation.replay(CUSTOMER_ID, [(DomainEvent(), 1)])


# -- properties over any sequence of commands --------------------------------------------------

AGENTS = [Agent("1", "Ada"), Agent("2", "Bo"), Agent("3", "Cy")]
agents = st.sampled_from(AGENTS)
#: An index into the snoozes (or periods) seen so far, counted from the newest (mostly the newest);
#: past the end: an unknown id.
which = st.sampled_from([0, 0, 0, 1, 2, 3])

operations = st.one_of(
    st.tuples(st.just("claim"), agents),
    st.tuples(st.just("assign"), st.none() | agents, st.booleans(), st.none() | agents),
    st.tuples(st.just("status"), st.sampled_from(["open", "pending", "resolved", "snoozed", "closed"])),
    st.tuples(st.just("snooze"), st.integers(min_value=-2, max_value=120)),
    # Chat's messages are the commonest: weighted by appearing twice.
    st.tuples(st.just("customer_writes")),
    st.tuples(st.just("customer_writes")),
    st.tuples(st.just("agent_writes"), agents),
    st.tuples(st.just("workflow_reacts")),
    st.tuples(st.just("workflow_reacts")),
    st.tuples(st.just("auto_assign"), agents),
    st.tuples(st.just("end_snooze"), which),
    st.tuples(st.just("check_first_response"), which, st.booleans()),
    st.tuples(st.just("note"), st.integers(min_value=0, max_value=2), st.sampled_from(["a", "b"]), agents),
    st.tuples(st.just("wait"), st.integers(min_value=1, max_value=30)),
    st.tuples(st.just("labels"), st.sets(st.sampled_from(["vip", "billing", "urgent"]), max_size=2),
              st.sets(st.sampled_from(["vip", "billing", "urgent"]), max_size=2)),
    st.tuples(st.just("mark_unread"), agents),
    st.tuples(st.just("mark_read"), agents),
)
programs = st.lists(operations, min_size=20, max_size=60)
targets = st.none() | st.just(TARGET)


@dataclasses.dataclass
class Model:
    """The documented rules, written down independently of the aggregate."""

    status: str = "open"
    #: The log position of the last status an agent set (set_status, snooze).
    agent_status_at: int = 0
    assignee: str | None = None
    snooze_id: uuid.UUID | None = None
    period: uuid.UUID | None = None
    due: dt.datetime | None = None
    breached: bool = False
    notes: dict[int, tuple[str, str]] = dataclasses.field(default_factory=dict)
    labels: set[str] = dataclasses.field(default_factory=set)
    unread_for: set[str] = dataclasses.field(default_factory=set)


def run(program: list[tuple], target: dt.timedelta | None) -> Stream:
    """Drive a conversation through ``program``, checking each decision against the Model."""
    s, m = Stream(), Model()
    written: collections.deque[RecordCustomerMessage | Agent] = collections.deque()  # an Agent: that agent's message
    snoozes: list[ConversationSnoozed] = []
    periods: list[FirstResponseClockStarted] = []
    note_ids = [uuid.uuid4() for _ in range(3)]

    def decide(decision: Decision, cmd: Any, expected: list[type] | type[ConversationError],
               at: dt.datetime | None = None) -> list[DomainEvent]:
        """Decide ``cmd``, expecting these event types or this refusal; the state before must not change."""
        before = s.state
        copy = dataclasses.replace(before, notes=dict(before.notes))
        if isinstance(expected, type):
            with pytest.raises(expected):
                decision(s.state, cmd, at or s.now)
            events = []
        else:
            events = s.decide(decision, cmd, at=at)
            assert types(events) == expected, (cmd, expected)
        assert before == copy  # deciding changes nothing: only the applied events do
        return events

    def customer_message_recorded(msg: RecordCustomerMessage) -> None:
        decided_after = m.agent_status_at > msg.position
        if decided_after and m.status == "resolved":
            decide(Conversation.record_customer_message, msg, [], at=msg.sent_at)
            return
        reopens = m.status != "open" and not decided_after
        starts = m.period is None
        events = decide(Conversation.record_customer_message, msg,
                        [ConversationReopened] * reopens + [FirstResponseClockStarted] * starts, at=msg.sent_at)
        if reopens:
            m.status, m.snooze_id = "open", None
        if starts:
            periods.append(events[-1])
            m.period, m.breached = msg.message_id, False
            m.due = msg.sent_at + target if target else None

    def agent_reply_recorded(agent: Agent) -> None:
        stops = m.period is not None
        decide(Conversation.record_agent_reply, reply(), [FirstResponseClockStopped] * stops)
        m.period, m.due, m.breached = None, None, False
        # Then (PARLEY_ASSIGN_ON_REPLY) the replying agent takes it if nobody holds it.
        takes = m.assignee is None
        decide(Conversation.assign_on_reply, replied(agent), [ConversationAssigned] * takes)
        if takes:
            m.assignee = agent.id

    for op in program:
        kind = op[0]
        if kind == "claim":
            agent = op[1]
            if m.assignee is None:
                decide(Conversation.claim, claim(agent), [ConversationAssigned])
                m.assignee = agent.id
            elif m.assignee == agent.id:
                decide(Conversation.claim, claim(agent), [])
            else:
                decide(Conversation.claim, claim(agent), AlreadyAssigned)
        elif kind == "assign":
            _, to, right, guess = op
            expected = m.assignee if right else (guess.id if guess else None)
            to_id = to.id if to else None
            cmd = assign(to, expected)
            if expected != m.assignee:
                decide(Conversation.assign, cmd, AssigneeChanged)
            elif to_id == m.assignee:
                decide(Conversation.assign, cmd, [])
            else:
                decide(Conversation.assign, cmd, [ConversationAssigned])
                m.assignee = to_id
        elif kind == "status":
            value = op[1]
            if value not in ("open", "pending", "resolved"):
                decide(Conversation.set_status, set_status(value), InvalidStatus)
            elif value == m.status:
                decide(Conversation.set_status, set_status(value), [])
            else:
                stops = value == "resolved" and m.period is not None
                changed_at = s.position + 1
                decide(Conversation.set_status, set_status(value),
                       [ConversationStatusChanged] + [FirstResponseClockStopped] * stops)
                m.agent_status_at = changed_at
                m.status, m.snooze_id = value, None
                if value == "resolved":
                    m.period, m.due, m.breached = None, None, False
        elif kind == "snooze":
            until = s.now + dt.timedelta(minutes=op[1])
            if op[1] <= 0:
                decide(Conversation.snooze, snooze(until), InvalidSnooze)
            else:
                [evt] = decide(Conversation.snooze, snooze(until), [ConversationSnoozed])
                snoozes.append(evt)
                m.status, m.snooze_id, m.agent_status_at = "snoozed", evt.snooze_id, s.position
        elif kind == "customer_writes":
            written.append(s.writes(target))
        elif kind == "agent_writes":
            s.position += 1
            written.append(op[1])
        elif kind == "workflow_reacts" and written:  # the process manager, in log order
            msg = written.popleft()
            if isinstance(msg, Agent):
                agent_reply_recorded(msg)
            else:
                customer_message_recorded(msg)
        elif kind == "auto_assign":
            agent = op[1]
            if m.assignee is None and m.status != "resolved":
                decide(Conversation.auto_assign, auto(agent), [ConversationAssigned])
                m.assignee = agent.id
            else:
                decide(Conversation.auto_assign, auto(agent), [])
        elif kind == "end_snooze":
            # A timer fires at its due time or later (conversations/scheduled.py).
            named = snoozes[-1 - op[1]] if op[1] < len(snoozes) else None
            snooze_id = named.snooze_id if named else uuid.uuid4()
            at = max(s.now, named.until) if named else s.now
            if m.status == "snoozed" and m.snooze_id == snooze_id:
                decide(Conversation.end_snooze, end_snooze(snooze_id), [ConversationReopened], at=at)
                m.status, m.snooze_id = "open", None
            else:
                decide(Conversation.end_snooze, end_snooze(snooze_id), [], at=at)
        elif kind == "check_first_response":
            named_period = periods[-1 - op[1]] if op[1] < len(periods) else None
            period_id = named_period.message_id if named_period else uuid.uuid4()
            on_time = op[2] and named_period is not None and named_period.due_at is not None
            at = max(s.now, named_period.due_at) if on_time else s.now
            if m.period == period_id and not m.breached and m.due is not None and at >= m.due:
                decide(Conversation.check_first_response, check(period_id), [FirstResponseSlaBreached], at=at)
                m.breached = True
            else:
                decide(Conversation.check_first_response, check(period_id), [], at=at)
        elif kind == "note":
            _, n, body, author = op
            cmd = note(note_ids[n], body, author)
            if n not in m.notes:
                decide(Conversation.add_note, cmd, [NoteAdded])
                m.notes[n] = (author.id, body)
            elif m.notes[n] == (author.id, body):
                decide(Conversation.add_note, cmd, [])
            else:
                decide(Conversation.add_note, cmd, NoteIdConflict)
        elif kind == "wait":
            s.later(dt.timedelta(minutes=op[1]))
        elif kind == "labels":
            _, add, remove = op
            if add & remove:
                decide(Conversation.change_labels, relabel(tuple(add), tuple(remove)), InvalidLabel)
            else:
                after = (m.labels | add) - remove
                decide(Conversation.change_labels, relabel(tuple(add), tuple(remove)),
                       [ConversationLabelsChanged] * (after != m.labels))
                m.labels = after
        elif kind == "mark_unread":
            agent = op[1]
            decide(Conversation.mark_unread, MarkUnread(CUSTOMER_ID, agent),
                   [ConversationMarkedUnread] * (agent.id not in m.unread_for))
            m.unread_for.add(agent.id)
        elif kind == "mark_read":
            agent = op[1]
            decide(Conversation.mark_read, MarkRead(CUSTOMER_ID, agent),
                   [ConversationMarkedRead] * (agent.id in m.unread_for))
            m.unread_for.discard(agent.id)

        conv = s.state
        assignee = conv.assignee.id if conv.assignee else None
        assert (conv.status, assignee, conv.snooze_id) == (m.status, m.assignee, m.snooze_id), op
        assert (conv.period_id, conv.first_response_due_at, conv.sla_breached) == (m.period, m.due, m.breached), op
        assert (conv.labels, conv.unread_for) == (m.labels, m.unread_for), op
        assert conv.version == len(s.history)
        assert conv.status is not Status.RESOLVED or conv.period_id is None, op  # resolved: nobody waits
    return s


@settings(deadline=None)
@given(program=programs, target=targets)
def test_any_sequence_of_commands_follows_the_documented_rules(program, target):
    run(program, target)


@settings(deadline=None)
@given(program=programs, target=targets)
def test_any_history_replayed_from_its_stored_events_rebuilds_the_same_state(program, target):
    s = run(program, target)
    assert Conversation.replay(CUSTOMER_ID, stored(s.history)) == s.state


@settings(deadline=None)
@given(program=programs, target=targets)
def test_in_any_history_each_event_follows_from_the_state_before_it(program, target):
    """One assignee at a time, a breach at most once per waiting period, a snooze ends at most once."""
    history = run(program, target).history
    conv = Conversation(CUSTOMER_ID)
    breaches_in_period = 0
    ended_snoozes: set[uuid.UUID] = set()
    for evt, position in history:
        if isinstance(evt, ConversationAssigned):
            assert evt.previous_assignee_id == (conv.assignee.id if conv.assignee else None)
            assert evt.assignee_id != evt.previous_assignee_id
            if evt.by in ("claim", "auto", "reply"):
                assert evt.previous_assignee_id is None  # never taken from someone who holds it
        elif isinstance(evt, ConversationStatusChanged | ConversationSnoozed | ConversationReopened):
            assert evt.previous_status == conv.status
            if isinstance(evt, ConversationStatusChanged):
                assert evt.status != evt.previous_status and evt.status != "snoozed"
            if isinstance(evt, ConversationReopened):
                assert evt.previous_status != "open"
                if evt.reason == "snooze_expired":
                    assert evt.cause_id == conv.snooze_id and evt.cause_id not in ended_snoozes
                    ended_snoozes.add(evt.cause_id)
        elif isinstance(evt, FirstResponseClockStarted):
            assert conv.period_id is None
            breaches_in_period = 0
        elif isinstance(evt, FirstResponseClockStopped):
            assert evt.period_id == conv.period_id is not None
        elif isinstance(evt, FirstResponseSlaBreached):
            breaches_in_period += 1
            assert breaches_in_period == 1
            assert evt.period_id == conv.period_id and evt.at >= evt.due_at == conv.first_response_due_at
        conv = conv.apply(evt, position)
        assert (conv.status is Status.SNOOZED) == (conv.snooze_id is not None) == (conv.snoozed_until is not None)


@given(minutes=st.integers(min_value=-10, max_value=2 * 366 * 24 * 60))
def test_a_snooze_is_accepted_exactly_when_it_ends_in_the_future_within_the_maximum(minutes):
    until = NOW + dt.timedelta(minutes=minutes)
    if NOW < until <= NOW + MAX_SNOOZE:
        [evt] = Conversation(CUSTOMER_ID).snooze(snooze(until), NOW)
        assert evt.until == until
    else:
        with pytest.raises(InvalidSnooze):
            Conversation(CUSTOMER_ID).snooze(snooze(until), NOW)
