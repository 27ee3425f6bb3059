"""Outside business hours (docs/hours.md): one automatic away reply per waiting
period, never an agent's first response; the first-response target and the
wait counted in business hours; the away status the widget and page show.

The clock here is the calendar: today (and the days around it) are holidays,
so the team is closed whatever the time of day the test runs at.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.tokens import issue_chat_link_token
from conversations.away import away_message_id
from eventstore.events import Cursor
from eventstore.store import EventStore
from tests.integration.test_agent_tools import agent_says, customer_says, settle

pytestmark = pytest.mark.django_db(transaction=True)


def log(kind: str) -> list[Any]:
    return [r.event for r in EventStore().read_all(Cursor.start(), limit=100_000) if r.event_type == kind]


def system_messages() -> list[Any]:
    return [e for e in log("MessageSent") if e.sender_kind == "system"]


@pytest.fixture
def closed(settings: Any) -> dt.datetime:
    return close_around_today(settings)


def close_around_today(settings: Any) -> dt.datetime:
    """Open every hour of every day but yesterday, today and tomorrow (UTC); returns the next opening."""
    today = dt.datetime.now(dt.timezone.utc).date()
    settings.PARLEY_BUSINESS_HOURS = "Mon-Sun 00:00-24:00"
    settings.PARLEY_TIME_ZONE = "UTC"
    settings.PARLEY_HOLIDAYS = " ".join(str(today + dt.timedelta(days=d)) for d in (-1, 0, 1))
    settings.PARLEY_AWAY_MESSAGE = "We're away: we reply by {next_opening}."
    return dt.datetime.combine(today + dt.timedelta(days=2), dt.time(0), tzinfo=dt.timezone.utc)


def test_outside_hours_the_first_message_of_a_waiting_period_gets_one_away_reply(closed, customer, agent):
    customer_says(customer.id, "Hello?")
    customer_says(customer.id, "Anyone there?")
    settle()
    settle()
    [first, _] = [e for e in log("MessageSent") if e.sender_kind == "customer"]
    [away] = system_messages()
    assert away.message_id == away_message_id(first.message_id)
    assert away.body == f"We're away: we reply by {closed:%A} {closed.day} {closed:%B} at 00:00 UTC."
    assert (away.sender_id, away.sender_name) == ("system", "Support")
    # Not an agent's reply: the customer still waits, nobody was assigned by it.
    assert log("FirstResponseClockStopped") == [] and log("ConversationAssigned") == []
    conv = agent.get(f"/api/v1/conversations/{customer.id}").json()["conversation"]
    assert conv["awaiting_reply"] is True and conv["assignee"] is None
    mine = customer.get("/api/v1/messages").json()["messages"]
    assert [m["sender"]["kind"] for m in mine] == ["customer", "customer", "system"]
    assert customer.get("/api/v1/badge").json()["unread"] == 1

    # An agent answers (the wait is counted in business hours: none passed), then a new period starts.
    agent_says(agent, customer.id, "Here now")
    settle()
    [stopped] = log("FirstResponseClockStopped")
    assert stopped.business_seconds == 0.0
    customer_says(customer.id, "One more question")
    settle()
    settle()
    assert len(system_messages()) == 2
    # A rebuild replays the replies; it never decides them again.
    call_command("rebuild_readmodels", verbosity=0)
    settle()
    assert len(system_messages()) == 2
    assert [m["sender"]["kind"] for m in customer.get("/api/v1/messages").json()["messages"]].count("system") == 2


def test_within_hours_no_away_reply_is_sent(settings, customer):
    settings.PARLEY_BUSINESS_HOURS = "Mon-Sun 00:00-24:00"
    customer_says(customer.id)
    settle()
    assert system_messages() == []


def test_the_first_response_target_is_counted_in_business_hours(closed, settings, customer):
    settings.PARLEY_FIRST_RESPONSE_SECONDS = 3600
    customer_says(customer.id)
    settle()
    [started] = log("FirstResponseClockStarted")
    assert started.due_at == closed + dt.timedelta(hours=1)


def test_the_widget_and_the_page_say_when_the_team_is_back(closed, client, customer):
    hours = client.get("/api/v1/widget").json()["business_hours"]
    assert hours == {"open": False, "next_opening": closed.isoformat().replace("+00:00", "Z"),
                     "next_opening_text": f"{closed:%A} {closed.day} {closed:%B} at 00:00 UTC"}
    browser = Client()
    assert browser.get("/chat/", {"token": issue_chat_link_token(uuid.UUID(customer.id))}).status_code == 302
    page = browser.get("/chat/")
    assert page.status_code == 200
    assert f"We're away, we reply by {hours['next_opening_text']}." in page.content.decode()


def test_the_page_says_nothing_of_hours_while_the_team_is_open(settings, customer):
    settings.PARLEY_BUSINESS_HOURS = "Mon-Sun 00:00-24:00"
    browser = Client()
    browser.get("/chat/", {"token": issue_chat_link_token(uuid.UUID(customer.id))})
    assert "We're away" not in browser.get("/chat/").content.decode()
    assert Client().get("/api/v1/widget").json()["business_hours"]["open"] is True


def test_an_away_reply_never_counts_as_a_first_response_even_when_it_is_the_first_message_seen(closed, customer, agent):
    customer_says(customer.id)
    settle()
    settle()
    # The customer's message starts the wait; the away reply answers it and stops nothing.
    [asked] = [e for e in log("MessageSent") if e.sender_kind == "customer"]
    [period] = log("FirstResponseClockStarted")
    [away] = system_messages()
    assert (period.message_id, away.message_id) == (asked.message_id, away_message_id(asked.message_id))
    assert log("FirstResponseClockStopped") == []
    # Nor in the reports: no first response and no agent's message, the conversation started by the customer.
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    report = agent.get("/api/v1/reports/summary", **{"from": today, "to": today}).json()
    assert (report["conversations"], report["messages"], report["first_response_seconds"]["count"]) == (
        1, {"customer": 1, "agent": 0}, 0)
