"""A month of conversations written straight to the log, for the reports page's browser test.

Each day of the last ``days`` (in UTC) has a few conversations: a customer
writes, an agent answers after a while, resolves, and most customers rate.
Events are appended through the event store with their own times, so the
reports projection folds a month that never happened in real time.

    python manage.py shell -c "from tests.support.reports_seed import seed; seed('1', 30)"
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

from chat.events import MessageSent
from conversations.events import (
    ConversationRated,
    ConversationStatusChanged,
    FirstResponseClockStarted,
    FirstResponseClockStopped,
    stream_id,
)
from customers.events import CustomerRegistered
from eventstore.events import DomainEvent, Metadata
from eventstore.store import EventStore


def seed(agent_id: str, days: int = 30, *, per_day: int = 3, seed_value: int = 27) -> dict[str, int]:
    """Write the month; returns what was written (conversations, ratings and their sum)."""
    rng = random.Random(seed_value)
    store = EventStore()
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    written = {"conversations": 0, "ratings": 0, "score_sum": 0}
    for d in range(days, 0, -1):
        day = today - dt.timedelta(days=d - 1)
        for i in range(rng.randint(1, per_day)):
            asked = day + dt.timedelta(hours=8 + i, minutes=rng.randint(0, 50))
            replied = asked + dt.timedelta(minutes=rng.randint(2, 90))
            score = rng.randint(2, 5) if rng.random() < 0.8 else None
            write_conversation(store, agent_id, f"Seeded {d}-{i}", asked, replied, replied + dt.timedelta(minutes=5),
                               score)
            if score is not None:
                written["ratings"] += 1
                written["score_sum"] += score
            written["conversations"] += 1
    return written


def write_conversation(store: EventStore, agent_id: str, name: str, asked: dt.datetime, replied: dt.datetime,
                       resolved: dt.datetime, score: int | None = None) -> uuid.UUID:
    """One conversation at the given times: a customer ``name`` asks, the agent replies and resolves it,
    and the customer rates it a minute later (with a ``score``); returns the customer's id."""
    customer = uuid.uuid4()
    store.append(f"customer-{customer}", [CustomerRegistered(customer, name, "", "", None)], 0,
                 Metadata(actor="integration"))
    question, answer = uuid.uuid4(), uuid.uuid4()
    store.append(f"message-{question}", [MessageSent(question, customer, "customer", str(customer), name,
                                                     "Where is my parcel?", asked)], 0)
    store.append(f"message-{answer}", [MessageSent(answer, customer, "agent", agent_id, "Agent",
                                                   "It is on its way.", replied)], 0)
    events: list[DomainEvent] = [
        FirstResponseClockStarted(customer, question, asked, None),
        FirstResponseClockStopped(customer, question, answer, replied,
                                  business_seconds=(replied - asked).total_seconds()),
        ConversationStatusChanged(customer, "resolved", "open", f"agent:{agent_id}", resolved),
    ]
    if score is not None:
        events.append(ConversationRated(customer, 1, score, "", resolved + dt.timedelta(minutes=1)))
    store.append(stream_id(customer), events, 0, Metadata(actor="system"))
    return customer
