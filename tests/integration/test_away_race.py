"""The away reply under real concurrency: exactly one per waiting period, also
when workers handle the same customer message at once.

Real threads, each with its own connection to PostgreSQL, whose unique
(stream, version) constraint is what settles the race; left out of the
SQLite run.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from conversations.away import away_message_id, reply_if_away
from conversations.hours import BusinessHours
from eventstore.events import Cursor
from eventstore.runner import LostLease
from eventstore.store import EventStore
from project.bootstrap import pipeline, workflow
from tests.integration.test_agent_tools import customer_says
from tests.integration.test_workflow_concurrency import threaded

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

#: Open on Mondays only: the Wednesday below is outside business hours.
MONDAYS = BusinessHours.parse("Mon 09:00-17:00", "Europe/Berlin")
WEDNESDAY_EVENING = dt.datetime(2026, 12, 2, 20, 0, tzinfo=dt.timezone.utc)


def system_messages() -> list[Any]:
    return [r.event for r in EventStore().read_all(Cursor.start(), limit=100_000)
            if r.event_type == "MessageSent" and r.event.sender_kind == "system"]


def test_eight_workers_replying_to_the_same_waiting_period_at_once_send_exactly_one(customer):
    period = uuid.uuid4()
    wrote = threaded(8, lambda i: reply_if_away(uuid.UUID(customer.id), period, WEDNESDAY_EVENING, MONDAYS))
    assert sorted(wrote) == [False] * 7 + [True]
    [only] = system_messages()
    assert only.message_id == away_message_id(period)
    assert "Monday 7 December at 09:00 CET" in only.body


def test_workflow_workers_racing_over_the_same_messages_send_one_reply_per_period(customer, settings):
    settings.PARLEY_BUSINESS_HOURS = "Mon-Sun 00:00-24:00"
    settings.PARLEY_HOLIDAYS = " ".join(
        str(dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=d)) for d in (-1, 0, 1))
    customer_says(customer.id, "Hello?")
    customer_says(customer.id, "Still there?")
    pipeline().catch_up()

    def work(i: int) -> None:
        for _ in range(3):
            try:
                workflow().catch_up()
            except LostLease:
                pass  # another worker holds the group now, as a worker that lost its lease finds out

    threaded(4, work)
    assert len(system_messages()) == 1
