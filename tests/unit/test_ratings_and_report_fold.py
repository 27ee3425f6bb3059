"""Ratings on the conversation aggregate, and the reports' fold, without a database."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

import pytest

from chat.events import MessageSent
from conversations.commands import Rate, clean_comment, clean_score
from conversations.domain import Conversation
from conversations.errors import InvalidComment, InvalidScore, NotResolved
from conversations.events import (
    ConversationAssigned,
    ConversationRated,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
)
from conversations.hours import BusinessHours
from eventstore.events import DomainEvent, Metadata, RecordedEvent
from readmodels import folds

CUSTOMER = uuid.UUID("5f1e0000-0000-4000-8000-000000000001")
T0 = dt.datetime(2026, 3, 27, 15, 0, tzinfo=dt.timezone.utc)  # a Friday, 16:00 in Berlin


def resolved(state: Conversation, at: dt.datetime = T0) -> Conversation:
    return state.apply(ConversationStatusChanged(CUSTOMER, "resolved", state.status.value, "agent:7", at))


def test_only_a_resolved_conversation_is_rated_once_per_period_the_last_counting():
    open_ = Conversation(CUSTOMER)
    with pytest.raises(NotResolved):
        open_.rate(Rate(CUSTOMER, 5, ""), T0)
    done = resolved(open_)
    [first] = done.rate(Rate(CUSTOMER, 2, ""), T0)
    assert isinstance(first, ConversationRated) and (first.resolution, first.score) == (1, 2)
    done = done.apply(first)
    assert done.rate(Rate(CUSTOMER, 2, ""), T0) == []  # the same again: nothing
    [second] = done.rate(Rate(CUSTOMER, 5, "ok"), T0)
    assert second.resolution == 1
    again = resolved(done.apply(second).apply(ConversationStatusChanged(CUSTOMER, "open", "resolved", "agent:7", T0)))
    [third] = again.rate(Rate(CUSTOMER, 2, ""), T0)  # a new period: the same score counts again
    assert third.resolution == 2


@pytest.mark.parametrize("score", [0, 6, 4.5, "5", True, None])
def test_a_score_is_a_whole_number_from_one_to_five(score):
    with pytest.raises(InvalidScore):
        clean_score(score)


def test_a_comment_is_text_of_at_most_2000_characters():
    assert clean_comment("  fine  ") == "fine"
    for bad in ("x" * 2001, "nul\x00"):
        with pytest.raises(InvalidComment):
            clean_comment(bad)


_positions = iter(range(1, 10_000))


def rec(e: DomainEvent) -> RecordedEvent:
    p = next(_positions)
    return RecordedEvent(position=p, tx=0, stream_id="s", version=1, event_id=uuid.uuid4(), event=e,
                         metadata=Metadata(), recorded_at=T0)


def fold(events: list[DomainEvent], clock: folds.ReportClock, replier: str | None = None):
    state, facts, tallies = None, [], []
    for e in events:
        state, f, t = folds.report(state, rec(e), clock, replier=replier)
        facts += f
        tallies += t
    return state, facts, tallies


def test_the_report_fold_counts_a_start_once_and_measures_in_business_time_on_local_days():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    clock = folds.ReportClock(berlin, BusinessHours.parse("Mon-Fri 09:00-17:00", "Europe/Berlin"))
    asked, again = uuid.uuid4(), uuid.uuid4()
    monday = dt.datetime(2026, 3, 30, 7, 30, tzinfo=dt.timezone.utc)  # 09:30 CEST, after the change to summer time
    events: list[DomainEvent] = [
        MessageSent(asked, CUSTOMER, "customer", str(CUSTOMER), "", "hi", T0),
        FirstResponseClockStarted(CUSTOMER, asked, T0, None),
        MessageSent(again, CUSTOMER, "customer", str(CUSTOMER), "", "hello?", T0 + dt.timedelta(minutes=5)),
        ConversationAssigned(CUSTOMER, "7", "Grace", None, "claim", "agent:7", monday),
        FirstResponseClockStopped(CUSTOMER, asked, uuid.uuid4(), monday),  # an old event: no business_seconds
        ConversationStatusChanged(CUSTOMER, "resolved", "open", "agent:7", monday),
        ConversationRated(CUSTOMER, 1, 3, "", monday),
        ConversationRated(CUSTOMER, 1, 5, "", monday),
    ]
    state, facts, tallies = fold(events, clock, replier="7")
    assert tallies == [("started", dt.date(2026, 3, 27), ""), ("customer_message", dt.date(2026, 3, 27), ""),
                       ("customer_message", dt.date(2026, 3, 27), ""), ("resolved", dt.date(2026, 3, 30), "7")]
    by_key = {f["key"]: f for f in facts}  # a later row of the same key replaces the earlier
    waited = by_key[f"first_response:{CUSTOMER}:{asked}"]
    # Friday 16:00-17:00 CET, then Monday 09:00-09:30 CEST: an hour and a half of working time.
    assert (waited["value"], waited["agent_id"], waited["day"]) == (5400.0, "7", dt.date(2026, 3, 30))
    assert by_key[f"resolution:{CUSTOMER}:1"]["value"] == 5400.0
    assert (by_key[f"rating:{CUSTOMER}:1"]["value"], by_key[f"rating:{CUSTOMER}:1"]["agent_id"]) == (5.0, "7")
    assert state is not None and state["open_since"] is None and state["resolutions"] == 1


def test_a_recorded_wait_is_taken_as_recorded_and_system_messages_count_for_nobody():
    clock = folds.ReportClock(dt.timezone.utc)
    asked = uuid.uuid4()
    _, facts, tallies = fold([
        FirstResponseClockStarted(CUSTOMER, asked, T0, None),
        MessageSent(uuid.uuid4(), CUSTOMER, "system", "system", "Support", "We're away", T0),
        FirstResponseClockStopped(CUSTOMER, asked, uuid.uuid4(), T0 + dt.timedelta(hours=3), business_seconds=42.0),
    ], clock, replier="7")
    assert tallies == []
    assert [f["value"] for f in facts] == [42.0]
