"""The agents' everyday tools through the API: assignment on reply, labels,
marking a conversation unread for oneself, and the list's filters answered
by the server on every page (docs/api.md, docs/workflow.md)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from conversations import handlers
from conversations.commands import Agent, AssignOnReply
from customers.services import customer_register
from eventstore.events import Cursor
from eventstore.models import StoredEvent
from eventstore.store import EventStore
from project.bootstrap import pipeline, workflow
from readmodels import asof
from readmodels.models import Conversation
from realtime import frames
from tests.conftest import Caller, new_id

pytestmark = pytest.mark.django_db(transaction=True)


def customer_says(customer_id: str | uuid.UUID, body: str = "Hello") -> None:
    cid = uuid.UUID(str(customer_id))
    send_message(SendMessage(uuid.uuid4(), cid, Actor(SenderKind.CUSTOMER, str(cid)), body))


def agent_says(agent: Caller, customer_id: str, body: str = "On it") -> dict[str, Any]:
    r = agent.post(f"/api/v1/conversations/{customer_id}/messages", {"message_id": new_id(), "body": body})
    assert r.status_code == 201, r.content
    return r.json()


def settle() -> None:
    """The workflow reacts, then the read models catch up with what it appended."""
    pipeline().catch_up()
    workflow().catch_up()
    pipeline().catch_up()


def events(kind: str) -> list[Any]:
    return [r.event for r in EventStore().read_all(Cursor.start(), limit=100_000) if r.event_type == kind]


def ids_of(page: dict[str, Any]) -> list[str]:
    return [c["customer_id"] for c in page["conversations"]]


def every_page(agent: Caller, **params: Any) -> list[str]:
    """The whole list under these filters, page by page as the dashboard asks for it."""
    found: list[str] = []
    query: dict[str, Any] = {"limit": 7, **params}
    while True:
        r = agent.get("/api/v1/conversations", **query)
        assert r.status_code == 200, r.content
        page = r.json()["conversations"]
        found += [c["customer_id"] for c in page]
        if len(page) < query["limit"]:
            return found
        query.update(before=page[-1]["last_activity_at"], before_id=page[-1]["customer_id"])


# -- assignment on reply ----------------------------------------------------------------------


def test_an_agents_reply_to_an_unassigned_conversation_makes_it_theirs(customer, make_agent):
    grace = make_agent("grace")
    customer_says(customer.id)
    reply = agent_says(grace, customer.id)
    settle()
    [assigned] = events("ConversationAssigned")
    assert (assigned.assignee_id, assigned.assignee_name, assigned.by, assigned.actor) == (
        grace.id, "Grace", "reply", f"agent:{grace.id}")
    conv = grace.get(f"/api/v1/conversations/{customer.id}").json()["conversation"]
    assert conv["assignee"] == {"id": grace.id, "name": "Grace"}
    assert customer.id in ids_of(grace.get("/api/v1/conversations", assignee="me").json())
    # Processed again (a batch redone after a crash), the reply assigns nothing twice.
    handlers.assign_on_reply(AssignOnReply(uuid.UUID(customer.id), Agent(grace.id, "Grace"),
                                           uuid.UUID(reply["message"]["message_id"])), now=dt.datetime.now(dt.timezone.utc))
    assert len(events("ConversationAssigned")) == 1


def test_a_reply_leaves_a_conversation_someone_holds_with_them(customer, make_agent):
    grace, linus = make_agent("grace"), make_agent("linus")
    assert linus.post(f"/api/v1/conversations/{customer.id}/claim").status_code == 200
    agent_says(grace, customer.id)
    settle()
    assert [e.assignee_id for e in events("ConversationAssigned")] == [linus.id]


def test_the_first_of_two_replies_takes_the_conversation(customer, make_agent):
    grace, linus = make_agent("grace"), make_agent("linus")
    agent_says(linus, customer.id, "First")
    agent_says(grace, customer.id, "Second")
    settle()
    assert [e.assignee_id for e in events("ConversationAssigned")] == [linus.id]


def test_with_assignment_on_reply_off_a_reply_leaves_it_unassigned(customer, make_agent, settings):
    settings.PARLEY_ASSIGN_ON_REPLY = False
    grace = make_agent("grace")
    customer_says(customer.id)
    agent_says(grace, customer.id)
    settle()
    assert events("ConversationAssigned") == []
    assert customer.id in ids_of(grace.get("/api/v1/conversations", assignee="none").json())


# -- labels ------------------------------------------------------------------------------------


def test_labels_are_added_and_removed_and_the_list_shows_and_filters_them(customer, make_customer, make_agent):
    grace = make_agent("grace")
    other = make_customer("Alan Turing", "alan@example.com")
    customer_says(customer.id)
    customer_says(other.id)
    r = grace.post(f"/api/v1/conversations/{customer.id}/labels", {"add": ["VIP", " billing "]})
    assert r.status_code == 200, r.content
    assert r.json()["conversation"]["labels"] == ["billing", "vip"]
    r = grace.post(f"/api/v1/conversations/{customer.id}/labels", {"add": ["urgent"], "remove": ["billing"]})
    assert r.json()["conversation"]["labels"] == ["urgent", "vip"]
    assert grace.post(f"/api/v1/conversations/{other.id}/labels", {"add": ["vip"]}).status_code == 200
    before = StoredEvent.objects.count()
    # The same change again appends nothing.
    assert grace.post(f"/api/v1/conversations/{other.id}/labels", {"add": ["VIP"]}).status_code == 200
    assert StoredEvent.objects.count() == before
    pipeline().catch_up()

    rows = {c["customer_id"]: c["labels"] for c in grace.get("/api/v1/conversations").json()["conversations"]}
    assert rows == {customer.id: ["urgent", "vip"], other.id: ["vip"]}
    assert set(ids_of(grace.get("/api/v1/conversations", label="VIP").json())) == {customer.id, other.id}
    assert ids_of(grace.get("/api/v1/conversations", label="urgent").json()) == [customer.id]
    assert ids_of(grace.get("/api/v1/conversations", label="billing").json()) == []
    assert grace.get("/api/v1/labels").json() == {"labels": [
        {"label": "urgent", "conversations": 1}, {"label": "vip", "conversations": 2}]}


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"add": ["two words"]}, 400, "invalid_label"),
    ({"add": ["-vip"]}, 400, "invalid_label"),
    ({"add": ["x" * 33]}, 400, "invalid_label"),
    ({"add": [""]}, 400, "invalid_label"),
    ({"add": ["vip"], "remove": ["VIP"]}, 400, "invalid_label"),
    ({"add": [f"l{i}" for i in range(21)]}, 400, "too_many_labels"),
    ({"add": "vip"}, 400, "invalid_field"),
    ({"add": [1]}, 400, "invalid_field"),
    ({}, 400, "missing_field"),
])
def test_a_labels_change_that_is_not_one_is_refused_with_a_clear_code_and_stores_nothing(
    customer, make_agent, body, status, code,
):
    grace = make_agent("grace")
    customer_says(customer.id)
    before = StoredEvent.objects.count()
    r = grace.post(f"/api/v1/conversations/{customer.id}/labels", body)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.content
    assert StoredEvent.objects.count() == before


def test_a_conversation_carries_at_most_twenty_labels(customer, make_agent):
    grace = make_agent("grace")
    path = f"/api/v1/conversations/{customer.id}/labels"
    assert grace.post(path, {"add": [f"l{i}" for i in range(20)]}).status_code == 200
    r = grace.post(path, {"add": ["one-more"]})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "too_many_labels")
    assert grace.post(path, {"add": ["one-more"], "remove": ["l0"]}).status_code == 200


def test_labels_are_for_agents_and_known_customers_only(customer, make_agent, client):
    grace = make_agent("grace")
    path = f"/api/v1/conversations/{customer.id}/labels"
    assert customer.post(path, {"add": ["vip"]}).json()["error"]["code"] == "forbidden"
    assert client.post(path, json.dumps({"add": ["vip"]}), content_type="application/json").status_code == 401
    r = grace.post(f"/api/v1/conversations/{uuid.uuid4()}/labels", {"add": ["vip"]})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "customer_not_found")
    assert customer.get("/api/v1/labels").status_code == 403
    assert StoredEvent.objects.filter(event_type="ConversationLabelsChanged").count() == 0


# -- marked unread, per agent -----------------------------------------------------------------


def test_an_agent_marks_a_conversation_unread_for_themselves_alone_until_they_open_it(customer, make_agent):
    grace, linus = make_agent("grace"), make_agent("linus")
    customer_says(customer.id)
    pipeline().catch_up()
    # Read by the agents: nothing is unread.
    [msg] = grace.get(f"/api/v1/conversations/{customer.id}/messages").json()["messages"]
    assert grace.post(f"/api/v1/messages/{msg['message_id']}/read").status_code == 200
    pipeline().catch_up()
    assert ids_of(grace.get("/api/v1/conversations", unread="true").json()) == []

    r = grace.post(f"/api/v1/conversations/{customer.id}/unread")
    assert r.status_code == 200, r.content
    assert r.json()["conversation"]["marked_unread"] is True
    before = StoredEvent.objects.count()
    assert grace.post(f"/api/v1/conversations/{customer.id}/unread").status_code == 200
    assert StoredEvent.objects.count() == before  # twice is once
    pipeline().catch_up()
    assert ids_of(grace.get("/api/v1/conversations", unread="true").json()) == [customer.id]
    assert grace.get("/api/v1/conversations").json()["conversations"][0]["marked_unread"] is True
    assert grace.get(f"/api/v1/conversations/{customer.id}").json()["conversation"]["marked_unread"] is True
    # Linus sees nothing of Grace's mark.
    assert ids_of(linus.get("/api/v1/conversations", unread="true").json()) == []
    assert linus.get("/api/v1/conversations").json()["conversations"][0]["marked_unread"] is False

    # Every dashboard hears the mark, naming whose it is; none of it reaches the customer.
    log = EventStore().read_all(Cursor.start(), limit=1000)
    built = frames.envelopes(log, asof.stored(log))
    marks = [json.loads(f) for e in built for f in e.to_agents if '"conversation.unread"' in f]
    assert [(m["agent_id"], m["unread"], m["customer_id"]) for m in marks] == [(grace.id, True, customer.id)]
    assert not any("unread" in f and "conversation" in f for e in built for f in e.to_customer)

    r = grace.delete(f"/api/v1/conversations/{customer.id}/unread")
    assert r.status_code == 200 and r.json()["conversation"]["marked_unread"] is False
    pipeline().catch_up()
    assert ids_of(grace.get("/api/v1/conversations", unread="true").json()) == []


def test_marking_unread_is_for_agents_and_known_customers_only(customer, make_agent, client):
    grace = make_agent("grace")
    path = f"/api/v1/conversations/{customer.id}/unread"
    assert (customer.post(path).status_code, customer.delete(path).status_code) == (403, 403)
    assert client.post(path).status_code == 401
    assert grace.post(f"/api/v1/conversations/{uuid.uuid4()}/unread").json()["error"]["code"] == "customer_not_found"
    assert grace.post("/api/v1/conversations/not-a-uuid/unread").json()["error"]["code"] == "invalid_field"
    assert StoredEvent.objects.filter(event_type="ConversationMarkedUnread").count() == 0


# -- the list's filters, past the first page ----------------------------------------------------


def test_every_filter_is_answered_by_the_server_on_every_page(make_agent):
    """Seventy conversations, pages of seven: each filter's whole answer, page
    after page, is exactly the conversations it should show, newest first."""
    grace, linus = make_agent("grace"), make_agent("linus")
    cids = [str(customer_register(name=f"Customer {i:02}").customer.id) for i in range(70)]
    for cid in cids:  # the oldest first: cids[0] ends up on the last page
        customer_says(cid)
    settle()
    newest_first = list(reversed(cids))
    claimed = {cids[0], cids[10], cids[40]}  # the oldest far beyond the first page
    for cid in claimed:
        assert grace.post(f"/api/v1/conversations/{cid}/claim").status_code == 200
    assert linus.post(f"/api/v1/conversations/{cids[5]}/claim").status_code == 200
    for cid in (cids[1], cids[2]):
        assert grace.post(f"/api/v1/conversations/{cid}/status", {"status": "pending"}).status_code == 200
    for cid in (cids[3], cids[40]):
        assert grace.post(f"/api/v1/conversations/{cid}/labels", {"add": ["vip"]}).status_code == 200
    agent_says(linus, cids[60])  # answered: no longer waiting, and Linus's by the reply
    assert grace.post(f"/api/v1/conversations/{cids[30]}/unread").status_code == 200
    for cid in cids[20:70]:  # the customers' messages are read, but for the first twenty
        for m in grace.get(f"/api/v1/conversations/{cid}/messages").json()["messages"]:
            if m["sender"]["kind"] == "customer":
                grace.post(f"/api/v1/messages/{m['message_id']}/read")
    settle()
    order = [c for c in ids_of(grace.get("/api/v1/conversations", limit=100).json())]
    assert set(order) == set(cids)

    def expect(ids: set[str]) -> list[str]:
        return [c for c in order if c in ids]

    assert every_page(grace) == order
    assert every_page(grace, assignee="me") == expect(claimed)
    assert every_page(linus, assignee="me") == expect({cids[5], cids[60]})
    assert every_page(grace, assignee=linus.id) == expect({cids[5], cids[60]})
    assert every_page(grace, assignee="none") == expect(set(cids) - claimed - {cids[5], cids[60]})
    assert every_page(grace, status="pending") == expect({cids[1], cids[2]})
    assert every_page(grace, label="vip") == expect({cids[3], cids[40]})
    assert every_page(grace, label="vip", assignee="me") == expect({cids[40]})
    assert every_page(grace, awaiting_reply="true") == expect(set(cids) - {cids[60]})
    assert every_page(grace, unread="true") == expect(set(cids[:20]) | {cids[30]})
    assert every_page(linus, unread="true") == expect(set(cids[:20]))
    assert newest_first[-1] == cids[0]


def test_conversations_with_the_same_activity_time_are_neither_skipped_nor_repeated_between_pages(make_agent):
    grace = make_agent("grace")
    cids = [str(customer_register(name=f"C{i}").customer.id) for i in range(9)]
    for cid in cids:
        customer_says(cid)
    pipeline().catch_up()
    same = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    Conversation.objects.update(last_activity_at=same)
    found = every_page(grace)
    assert sorted(found) == sorted(cids) and len(found) == 9


@pytest.mark.parametrize("params", [
    {"label": "two words"}, {"unread": "yes"}, {"awaiting_reply": "1"}, {"status": "closed"}, {"assignee": "someone"},
    {"before_id": str(uuid.uuid4())}, {"before": "2026-01-01T00:00:00Z", "before_id": "nope"},
])
def test_a_filter_that_is_not_one_is_refused_with_invalid_parameter(make_agent, params):
    r = make_agent("grace").get("/api/v1/conversations", **params)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_parameter"), r.content
