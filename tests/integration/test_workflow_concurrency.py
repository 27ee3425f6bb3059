"""Claims, compare-and-set assignments and auto-assignment under real concurrency.

Real threads, each with its own connection to PostgreSQL (the row-level
truth these rules rely on); left out of the SQLite run.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts import presence
from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from eventstore.models import StoredEvent
from project.bootstrap import pipeline, workflow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def threaded(n: int, fn: Any) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return fn(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def _post(agent: Any, path: str, body: Any = None) -> int:
    # A client per thread: Django's test client is not shared across threads.
    import json
    client = Client()
    r = client.post(path, json.dumps(body or {}), content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {agent.token}")
    return r.status_code


def test_agents_claiming_at_once_get_exactly_one_200(customer, make_agent):
    agents = [make_agent(f"agent{i}") for i in range(8)]
    statuses = threaded(8, lambda i: _post(agents[i], f"/api/v1/conversations/{customer.id}/claim"))
    assert sorted(statuses) == [200] + [409] * 7
    assert StoredEvent.objects.filter(event_type="ConversationAssigned").count() == 1


def test_compare_and_set_assignments_at_once_let_exactly_one_through(customer, make_agent):
    agents = [make_agent(f"agent{i}") for i in range(8)]
    url = f"/api/v1/conversations/{customer.id}/assign"
    statuses = threaded(8, lambda i: _post(agents[i], url, {"agent_id": agents[i].id, "expected_assignee": None}))
    assert sorted(statuses) == [200] + [409] * 7
    assert StoredEvent.objects.filter(event_type="ConversationAssigned").count() == 1


def test_fifty_conversations_starting_at_once_are_spread_fairly_and_never_above_capacity(make_agent, settings, project):
    settings.PARLEY_AUTO_ASSIGN = "round_robin"
    settings.PARLEY_AGENT_CAPACITY = 10
    agents = [make_agent(f"agent{i}") for i in range(3)]
    offline = make_agent("offline")
    for a in agents:
        presence.agent_connected(f"socket-{a.id}", a.id)
    from customers.services import customer_register
    customers = [customer_register(name=f"C{i}").customer.id for i in range(50)]

    def start(i: int) -> None:
        c = customers[i]
        send_message(SendMessage(uuid.uuid4(), c, Actor(SenderKind.CUSTOMER, str(c)), "Hello"))

    threaded(50, start)
    # Two workflow instances race for the log: one holds the lease, and neither can double-assign.
    threaded(2, lambda i: _catch_up())
    workflow().catch_up()
    pipeline().catch_up()
    from readmodels.models import Conversation
    load = Counter(Conversation.objects.exclude(assignee_id=None).values_list("assignee_id", flat=True))
    assert load == {a.id: 10 for a in agents}  # 30 assigned, 10 each; nobody above capacity
    assert offline.id not in load
    assert Conversation.objects.filter(assignee_id=None).count() == 20
    assert StoredEvent.objects.filter(event_type="ConversationAssigned").count() == 30


def test_fair_turns_when_capacity_is_not_the_limit(make_agent, settings):
    settings.PARLEY_AUTO_ASSIGN = "round_robin"
    settings.PARLEY_AGENT_CAPACITY = 100
    agents = [make_agent(f"agent{i}") for i in range(3)]
    for a in agents:
        presence.agent_connected(f"socket-{a.id}", a.id)
    from customers.services import customer_register
    customers = [customer_register(name=f"C{i}").customer.id for i in range(50)]
    threaded(50, lambda i: send_message(SendMessage(uuid.uuid4(), customers[i],
                                                   Actor(SenderKind.CUSTOMER, str(customers[i])), "Hi")))
    workflow().catch_up()
    from conversations.models import Routing
    load = Counter(Routing.objects.values_list("assignee_id", flat=True))
    assert sorted(load.values()) == [16, 17, 17]


def _catch_up() -> None:
    from eventstore.runner import LostLease
    try:
        workflow().catch_up()
    except LostLease:
        pass  # the other instance holds the lease
