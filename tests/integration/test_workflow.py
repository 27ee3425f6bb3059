"""The team workflow through the API, the process manager and the timers.

Clocks are injected: timers fire at a time the test names (``fire_due(now=...)``),
and the process manager runs when the test says (``flow()``), never on a sleep.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from accounts import presence
from conversations.process_manager import FIRST_RESPONSE_TIMER
from eventstore.models import StoredEvent
from project.bootstrap import workflow
from tests.conftest import new_id
from workers import timers
from workers.models import Timer

pytestmark = pytest.mark.django_db(transaction=True)

def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def flow() -> None:
    """Run the workflow process manager until it has caught up with the log."""
    workflow().catch_up()


def says(caller: Any, body: str = "Hello") -> dict[str, Any]:
    r = caller.post("/api/v1/messages", {"message_id": new_id(), "body": body})
    assert r.status_code == 201, r.content
    return r.json()


def replies(agent: Any, customer: Any, body: str = "Hi!") -> dict[str, Any]:
    r = agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": new_id(), "body": body})
    assert r.status_code == 201, r.content
    return r.json()


def conversation(agent: Any, customer: Any) -> dict[str, Any]:
    r = agent.get(f"/api/v1/conversations/{customer.id}")
    assert r.status_code == 200, r.content
    return r.json()["conversation"]


def count(event_type: str) -> int:
    return StoredEvent.objects.filter(event_type=event_type).count()


# -- claim, assign, status --------------------------------------------------------------


def test_a_claim_assigns_the_caller_and_a_second_agents_claim_is_refused(customer, make_agent, project):
    grace, linus = make_agent("grace"), make_agent("linus")
    r = grace.post(f"/api/v1/conversations/{customer.id}/claim")
    assert r.status_code == 200, r.content
    assert r.json()["conversation"]["assignee"] == {"id": grace.id, "name": "Grace"}
    r = linus.post(f"/api/v1/conversations/{customer.id}/claim")
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_assigned"
    assert grace.post(f"/api/v1/conversations/{customer.id}/claim").status_code == 200  # one's own: unchanged
    assert count("ConversationAssigned") == 1
    project()
    assert conversation(linus, customer)["assignee"]["id"] == grace.id


def test_assignment_is_a_compare_and_set_on_the_expected_assignee(customer, make_agent):
    grace, linus = make_agent("grace"), make_agent("linus")
    url = f"/api/v1/conversations/{customer.id}/assign"
    assert grace.post(url, {"agent_id": linus.id, "expected_assignee": None}).status_code == 200
    stale = grace.post(url, {"agent_id": grace.id, "expected_assignee": None})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "assignee_changed"
    ok = grace.post(url, {"agent_id": None, "expected_assignee": int(linus.id)})
    assert ok.status_code == 200 and ok.json()["conversation"]["assignee"] is None
    assert count("ConversationAssigned") == 2


@pytest.mark.parametrize("body,code", [
    ({"agent_id": "1"}, "missing_field"),
    ({"agent_id": True, "expected_assignee": None}, "invalid_field"),
    ({"agent_id": "abc", "expected_assignee": None}, "invalid_field"),
    ({"agent_id": "424242", "expected_assignee": None}, "agent_not_found"),
])
def test_a_bad_assignment_is_refused_and_stores_nothing(customer, agent, body, code):
    r = agent.post(f"/api/v1/conversations/{customer.id}/assign", body)
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code
    assert count("ConversationAssigned") == 0


def test_the_agent_list_names_every_active_agent_and_who_is_online(make_agent, customer):
    from django.contrib.auth import get_user_model

    grace, linus = make_agent("grace"), make_agent("linus")
    get_user_model().objects.create_user("visitor", password="x", is_staff=False)
    get_user_model().objects.create_user("gone", password="x", is_staff=True, is_active=False)
    presence.agent_connected("socket-1", linus.id)
    r = grace.get("/api/v1/agents")
    assert r.status_code == 200, r.content
    assert r.json()["agents"] == [
        {"id": grace.id, "name": "Grace", "online": False, "username": "grace"},
        {"id": linus.id, "name": "Linus", "online": True, "username": "linus"},
    ]
    assert customer.get("/api/v1/agents").status_code == 403


def test_workflow_commands_on_an_unknown_customer_answer_404(agent):
    for action, body in (("claim", None), ("status", {"status": "resolved"}), ("notes", {"note_id": new_id(), "body": "x"})):
        r = agent.post(f"/api/v1/conversations/{uuid.uuid4()}/{action}", body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "customer_not_found"
    assert StoredEvent.objects.count() == 0


def test_status_changes_and_the_list_filters_by_status_and_assignee(make_customer, make_agent, project):
    grace, linus = make_agent("grace"), make_agent("linus")
    ada, bob, cy = make_customer("Ada"), make_customer("Bob"), make_customer("Cy")
    for c in (ada, bob, cy):
        says(c)
    grace.post(f"/api/v1/conversations/{ada.id}/claim")
    linus.post(f"/api/v1/conversations/{bob.id}/claim")
    r = grace.post(f"/api/v1/conversations/{ada.id}/status", {"status": "pending"})
    assert r.status_code == 200 and r.json()["conversation"]["status"] == "pending"
    bad = grace.post(f"/api/v1/conversations/{ada.id}/status", {"status": "closed"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_status"
    project()

    def ids(**params: str) -> set[str]:
        r = grace.get("/api/v1/conversations", **params)
        assert r.status_code == 200, r.content
        return {c["customer_id"] for c in r.json()["conversations"]}

    assert ids(assignee="me") == {ada.id}
    assert ids(assignee="none") == {cy.id}
    assert ids(assignee=linus.id) == {bob.id}
    assert ids(status="pending") == {ada.id}
    assert ids(status="open") == {bob.id, cy.id}
    assert ids() == {ada.id, bob.id, cy.id}
    assert grace.get("/api/v1/conversations", status="closed").status_code == 400


# -- a customer message reopens --------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "resolved", "snoozed"])
def test_a_customer_message_reopens_a_conversation(customer, agent, project, status):
    says(customer)
    flow()
    if status == "snoozed":
        agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": (now() + dt.timedelta(days=1)).isoformat()})
    else:
        agent.post(f"/api/v1/conversations/{customer.id}/status", {"status": status})
    flow()
    says(customer, "Anyone there?")
    flow()
    project()
    assert conversation(agent, customer)["status"] == "open"
    assert count("ConversationReopened") == 1
    flow()  # a second run appends nothing more
    assert count("ConversationReopened") == 1
    if status == "snoozed":
        assert [t.state for t in Timer.objects.all()] == ["cancelled"]  # the snooze's timer is moot


# -- snooze and durable timers -----------------------------------------------------------------


def test_a_snooze_reopens_exactly_once_when_a_worker_runs_after_the_due_time(customer, agent, project):
    says(customer)
    until = now() + dt.timedelta(hours=2)
    r = agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": until.isoformat()})
    assert r.status_code == 200 and r.json()["conversation"]["status"] == "snoozed"
    flow()
    (timer,) = timers.pending(customer.id)
    assert timer.due_at == until
    assert timers.fire_due(now=until - dt.timedelta(seconds=1)) == 0  # not yet
    # No worker ran at `until`; one starts a day later and fires it, once.
    assert timers.fire_due(now=until + dt.timedelta(days=1)) == 1
    assert timers.fire_due(now=until + dt.timedelta(days=2)) == 0
    project()
    assert conversation(agent, customer)["status"] == "open"
    assert count("ConversationReopened") == 1


def test_a_crash_while_firing_leaves_the_timer_pending_and_it_fires_once_later(customer, agent, monkeypatch):
    from conversations.process_manager import SNOOZE_TIMER

    says(customer)
    until = now() + dt.timedelta(minutes=5)
    agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": until.isoformat()})
    flow()
    real = timers._handlers[SNOOZE_TIMER]

    def append_then_die(due: timers.Due, now: dt.datetime) -> None:
        real(due, now)  # the command's events are appended...
        raise RuntimeError("...and the worker dies before its commit")

    monkeypatch.setitem(timers._handlers, SNOOZE_TIMER, append_then_die)
    assert timers.fire_due(now=until, limit=1) == 0
    assert count("ConversationReopened") == 0  # rolled back with the timer's claim
    (timer,) = timers.pending(customer.id)
    assert timer.attempts == 1 and "dies" in timer.last_error
    monkeypatch.setitem(timers._handlers, SNOOZE_TIMER, real)
    assert timers.fire_due(now=until) == 0  # retried later, not at once
    assert timers.fire_due(now=until + timers.RETRY_AFTER) == 1
    assert timers.fire_due(now=until + timers.RETRY_AFTER * 2) == 0
    assert count("ConversationReopened") == 1


def test_a_timer_fired_again_for_the_same_cause_appends_nothing(customer, agent):
    says(customer)
    until = now() + dt.timedelta(minutes=5)
    agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": until.isoformat()})
    flow()
    assert timers.fire_due(now=until) == 1
    agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": (until + dt.timedelta(hours=1)).isoformat()})
    Timer.objects.filter(key__startswith="snooze:", state="fired").update(state="pending")  # as if the commit was lost
    timers.fire_due(now=until + dt.timedelta(minutes=1))
    assert count("ConversationReopened") == 1


def test_a_new_snooze_cancels_the_old_timer_and_an_old_timer_cannot_end_it(customer, agent, project):
    says(customer)
    first, second = now() + dt.timedelta(hours=1), now() + dt.timedelta(hours=3)
    agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": first.isoformat()})
    agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": second.isoformat()})
    flow()
    assert [t.due_at for t in timers.pending(customer.id)] == [second]
    assert timers.fire_due(now=first + dt.timedelta(minutes=1)) == 0
    assert timers.fire_due(now=second) == 1
    assert count("ConversationReopened") == 1


@pytest.mark.parametrize("until", ["tomorrow", "2020-01-01T00:00:00Z", "2030-01-01T00:00:00", "2999-01-01T00:00:00Z"])
def test_a_bad_snooze_is_refused_and_stores_nothing(customer, agent, until):
    r = agent.post(f"/api/v1/conversations/{customer.id}/snooze", {"until": until})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_snooze"
    assert count("ConversationSnoozed") == 0


# -- first-response time ---------------------------------------------------------------------


def test_a_first_response_breach_is_recorded_once_per_waiting_period(customer, agent, project, settings):
    settings.PARLEY_FIRST_RESPONSE_SECONDS = 60
    sent = says(customer)["message"]
    flow()
    project()
    conv = conversation(agent, customer)
    due = dt.datetime.fromisoformat(conv["first_response_due_at"].replace("Z", "+00:00"))
    assert due == dt.datetime.fromisoformat(sent["sent_at"].replace("Z", "+00:00")) + dt.timedelta(seconds=60)
    says(customer, "hello??")  # the same waiting period
    flow()
    assert len(timers.pending(customer.id)) == 1
    assert timers.fire_due(now=due + dt.timedelta(seconds=1)) == 1
    assert timers.fire_due(now=due + dt.timedelta(hours=1)) == 0
    project()
    assert conversation(agent, customer)["sla_breached"] is True
    assert count("FirstResponseSlaBreached") == 1
    # An agent reply ends the period; the next customer message starts a new one.
    replies(agent, customer)
    flow()
    project()
    assert conversation(agent, customer)["sla_breached"] is False
    says(customer, "one more thing")
    flow()
    # (the agent's unread reply also started the email fallback's timer)
    assert len([t for t in timers.pending(customer.id) if t.kind == FIRST_RESPONSE_TIMER]) == 1
    timers.fire_due(now=now() + dt.timedelta(hours=1))
    assert count("FirstResponseSlaBreached") == 2


def test_a_reply_in_time_cancels_the_first_response_timer(customer, agent, project, settings):
    settings.PARLEY_FIRST_RESPONSE_SECONDS = 60
    says(customer)
    flow()
    replies(agent, customer)
    flow()
    assert timers.pending(customer.id) == []
    assert Timer.objects.get().state == "cancelled"
    assert timers.fire_due(now=now() + dt.timedelta(hours=1)) == 0
    project()
    conv = conversation(agent, customer)
    assert conv["sla_breached"] is False and conv["first_response_due_at"] is None
    assert count("FirstResponseSlaBreached") == 0


def test_a_period_that_ends_and_the_next_one_in_one_batch_keep_only_the_new_timer(customer, agent, settings):
    settings.PARLEY_FIRST_RESPONSE_SECONDS = 60
    says(customer, "first")
    flow()
    replies(agent, customer)
    second = says(customer, "second")
    flow()  # one batch stops the first period and starts the second
    states = {t.key: t.state for t in Timer.objects.all()}
    assert sorted(states.values()) == ["cancelled", "pending"]
    [pending] = timers.pending(customer.id)
    assert pending.key.endswith(second["message"]["message_id"])


def test_a_breach_frame_reaches_agents_live(customer, agent, settings):
    from realtime.frames import AGENTS, customer_audience, envelopes

    settings.PARLEY_FIRST_RESPONSE_SECONDS = 1
    says(customer)
    flow()
    timers.fire_due(now=now() + dt.timedelta(minutes=1))
    from project.bootstrap import pipeline
    pipeline().catch_up()
    from eventstore.events import Cursor
    from eventstore.store import EventStore
    events = EventStore().read_all(Cursor.start())
    (breach,) = [e for e in envelopes(events) if e.cursor.position == events[-1].position]
    import json
    (frame,) = [json.loads(f) for f in breach.frames_for(AGENTS)]
    assert frame["type"] == "conversation.updated" and frame["conversation"]["sla_breached"] is True
    assert breach.frames_for(customer_audience(customer.id)) == ()


# -- auto-assignment ---------------------------------------------------------------------------


def test_round_robin_takes_turns_among_online_agents_only(make_customer, make_agent, project, settings):
    settings.PARLEY_AUTO_ASSIGN = "round_robin"
    grace, linus, ada_agent = make_agent("grace"), make_agent("linus"), make_agent("offline")
    presence.agent_connected("socket-g", grace.id)
    presence.agent_connected("socket-l", linus.id)
    customers = [make_customer(f"C{i}") for i in range(4)]
    for c in customers:
        says(c)
    flow()
    project()
    owners = [conversation(grace, c)["assignee"]["id"] for c in customers]
    assert sorted(owners) == sorted([grace.id, grace.id, linus.id, linus.id])
    assert owners[0] != owners[1] and owners[2] != owners[3]
    assert ada_agent.id not in owners


def test_auto_assignment_never_goes_above_capacity_and_resolving_frees_room(make_customer, make_agent, project, settings):
    settings.PARLEY_AUTO_ASSIGN = "round_robin"
    settings.PARLEY_AGENT_CAPACITY = 2
    grace = make_agent("grace")
    presence.agent_connected("socket-g", grace.id)
    customers = [make_customer(f"C{i}") for i in range(3)]
    for c in customers:
        says(c)
    flow()
    project()
    assert [conversation(grace, c)["assignee"] is not None for c in customers] == [True, True, False]
    grace.post(f"/api/v1/conversations/{customers[0].id}/status", {"status": "resolved"})
    flow()
    says(customers[0], "back again")  # reopened and unassigned? No: still Grace's, who has room again
    newcomer = make_customer("New")
    says(newcomer)
    flow()
    project()
    assert conversation(grace, newcomer)["assignee"] is None  # customers[0] reopened counts again: 2 of 2
    presence.agent_disconnected("socket-g")
    assert presence.online_agent_ids() == []


def test_an_agent_id_beyond_any_user_id_is_not_found_not_an_error(customer, agent):
    r = agent.post(f"/api/v1/conversations/{customer.id}/assign",
                   {"agent_id": "99999999999999999999", "expected_assignee": None})
    assert r.status_code == 404 and r.json()["error"]["code"] == "agent_not_found"


def test_a_command_decided_on_a_stale_history_is_decided_again_on_the_stream(customer, agent):
    """The process manager reads a batch's conversations in one query; if one
    changed since (an agent's claim), the append conflicts and the command is
    decided again on the stream as it is: nothing lost, nothing doubled."""
    from conversations import handlers
    from conversations.commands import RecordCustomerMessage
    from conversations.events import stream_id
    from eventstore.store import EventStore

    stale = EventStore().read_stream(stream_id(uuid.UUID(customer.id)))
    assert agent.post(f"/api/v1/conversations/{customer.id}/claim").status_code == 200
    message_id = uuid.uuid4()
    cmd = RecordCustomerMessage(uuid.UUID(customer.id), message_id, now(), None, 1)
    outcome = handlers.record_customer_message(cmd, history=stale)
    assert outcome.appended
    assert outcome.conversation.assignee is not None  # decided on the claim it had not seen
    again = handlers.record_customer_message(cmd, history=stale)  # the same cause, stale again
    assert not again.appended
    versions = [r.version for r in EventStore().read_stream(stream_id(uuid.UUID(customer.id)))]
    assert versions == list(range(1, len(versions) + 1))
