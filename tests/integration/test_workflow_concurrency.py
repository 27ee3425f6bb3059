"""Claims, compare-and-set assignments and auto-assignment under real concurrency.

Real threads, each with its own connection to PostgreSQL (the row-level
truth these rules rely on); left out of the SQLite run.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts import presence
from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from conversations import handlers
from conversations.commands import Agent, AssignOnReply, Claim
from conversations.errors import AlreadyAssigned
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


def test_an_assignment_on_reply_racing_claims_leaves_exactly_one_assignee_each(make_agent, project):
    """Ten conversations, each answered by Grace: for every one, the workflow's
    assignment on that reply and Linus's claim go at the same instant. Each
    ends with one assignee, and the loser learns it: a claim that lost
    answers 409, an assignment on reply that lost appends nothing; the
    workflow, running after, adds nothing."""
    grace, linus = make_agent("grace"), make_agent("linus")
    from customers.services import customer_register
    customers = [customer_register(name=f"C{i}").customer.id for i in range(10)]
    replies = []
    for c in customers:
        out = send_message(SendMessage(uuid.uuid4(), c, Actor(SenderKind.AGENT, grace.id, "Grace"), "How can I help?"))
        replies.append(out.message.message_id)

    def act(i: int) -> int:
        c, reply = customers[i // 2], replies[i // 2]
        if i % 2 == 0:
            cmd = AssignOnReply(c, Agent(grace.id, "Grace"), reply)
            return 201 if handlers.assign_on_reply(cmd, now=datetime.now(timezone.utc)).appended else 0
        try:  # the command the claim endpoint runs, so both reach the stream alike
            handlers.claim(Claim(c, Agent(linus.id, "Linus")))
            return 200
        except AlreadyAssigned:
            return 409

    outcomes = threaded(20, act)
    workflow().catch_up()
    pipeline().catch_up()
    from readmodels.models import Conversation
    holders = dict(Conversation.objects.values_list("customer_id", "assignee_id"))
    for n, c in enumerate(customers):
        by_reply, claim = outcomes[2 * n], outcomes[2 * n + 1]
        assignments = list(StoredEvent.objects.filter(event_type="ConversationAssigned", stream_id=f"conversation-{c}"))
        assert len(assignments) == 1, c
        assert (by_reply, claim) in {(201, 409), (0, 200)}, (by_reply, claim)
        assert holders[c] == (linus.id if claim == 200 else grace.id)
        assert json.loads(assignments[0].data)["by"] == ("claim" if claim == 200 else "reply")


def test_replies_of_two_agents_at_once_assign_the_conversation_to_the_first_in_the_log(make_agent, customer):
    agents = [make_agent(f"agent{i}") for i in range(6)]
    threaded(6, lambda i: send_message(SendMessage(uuid.uuid4(), uuid.UUID(customer.id),
                                                   Actor(SenderKind.AGENT, agents[i].id, f"Agent {i}"), "Me!")))
    threaded(2, lambda i: _catch_up())
    workflow().catch_up()
    first = StoredEvent.objects.filter(event_type="MessageSent").order_by("tx", "position").first()
    [assigned] = StoredEvent.objects.filter(event_type="ConversationAssigned")
    assert first is not None and json.loads(assigned.data)["assignee_id"] == json.loads(first.data)["sender_id"]
