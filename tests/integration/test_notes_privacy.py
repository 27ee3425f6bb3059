"""Private notes: idempotent by note_id, shown to agents, and on no path to a customer."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from eventstore.events import Cursor
from eventstore.models import StoredEvent
from eventstore.store import EventStore
from notifications.models import PushDelivery, PushSubscription
from notifications.process_manager import PushProcessManager
from project.bootstrap import pipeline
from project.bootstrap import push as push_group
from realtime.frames import AGENTS, customer_audience, envelopes, for_customer
from tests.conftest import new_id

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "VIP: refund approved up to 50 EUR"


def add_note(agent: Any, customer: Any, note_id: str | None = None, body: str = SECRET) -> Any:
    return agent.post(f"/api/v1/conversations/{customer.id}/notes", {"note_id": note_id or new_id(), "body": body})


def test_a_note_is_idempotent_by_its_id(customer, agent, make_customer):
    note_id = new_id()
    first = add_note(agent, customer, note_id)
    assert first.status_code == 201, first.content
    assert first.json()["note"]["kind"] == "note" and first.json()["note"]["body"] == SECRET
    again = add_note(agent, customer, note_id)
    assert again.status_code == 200 and again.json()["note"] == first.json()["note"]
    other = add_note(agent, customer, note_id, body="something else")
    assert other.status_code == 409 and other.json()["error"]["code"] == "note_id_conflict"
    elsewhere = add_note(agent, make_customer("Bob"), note_id)
    assert elsewhere.status_code == 409 and elsewhere.json()["error"]["code"] == "note_id_conflict"
    assert StoredEvent.objects.filter(event_type="NoteAdded").count() == 1


@pytest.mark.parametrize("body", [{"body": "x"}, {"note_id": "nope", "body": "x"}, {"note_id": new_id(), "body": " "},
                                  {"note_id": new_id(), "body": "a\x00b"}, {"note_id": new_id(), "body": 5}])
def test_a_bad_note_is_refused_and_stores_nothing(customer, agent, body):
    r = agent.post(f"/api/v1/conversations/{customer.id}/notes", body)
    assert r.status_code == 400, r.content
    assert StoredEvent.objects.filter(event_type="NoteAdded").count() == 0


def test_a_customer_cannot_add_a_note(customer):
    r = customer.post(f"/api/v1/conversations/{customer.id}/notes", {"note_id": new_id(), "body": "x"})
    assert r.status_code == 403


def test_agents_see_notes_among_messages_and_the_customer_never_does(customer, agent, project):
    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "Hello"})
    note = add_note(agent, customer).json()["note"]
    agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": new_id(), "body": "Hi!"})
    project()
    items = agent.get(f"/api/v1/conversations/{customer.id}/messages").json()["messages"]
    assert [i.get("kind", "message") for i in items] == ["message", "note", "message"]
    assert items[1] == {**note, "position": items[1]["position"]}
    # HTTP: the customer's sync and badge
    mine = customer.get("/api/v1/messages")
    assert SECRET not in mine.content.decode() and len(mine.json()["messages"]) == 2
    assert customer.get("/api/v1/badge").json()["unread"] == 1
    assert SECRET not in customer.get("/api/v1/badge").content.decode()


def test_a_note_frame_goes_to_agents_only_live_and_on_resume(customer, agent):
    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "Hello"})
    add_note(agent, customer)
    pipeline().catch_up()
    events = EventStore().read_all(Cursor.start())
    # Live: the fan-out's envelopes, by audience.
    envs = envelopes(events)
    to_agents = [json.loads(f) for e in envs for f in e.frames_for(AGENTS)]
    assert [f["type"] for f in to_agents if f["type"] == "note.created"] == ["note.created"]
    to_customer = [f for e in envs for f in e.frames_for(customer_audience(customer.id))]
    assert to_customer and not any(SECRET in f or "note" in json.loads(f)["type"] for f in to_customer)
    # Resume: the customer's events rebuilt from the log, as a resuming socket does.
    replay = [e for e in envelopes(for_customer(events, customer.id)) if e.frames_for(customer_audience(customer.id))]
    assert all(SECRET not in f for e in replay for f in e.frames_for(customer_audience(customer.id)))


def test_a_note_queues_no_push_and_moves_no_badge(customer, agent):
    assert "NoteAdded" not in PushProcessManager.event_types
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    PushSubscription.objects.create(
        customer_id=customer.id, endpoint="https://fcm.googleapis.com/fcm/send/x", p256dh="k", auth="a",
        created_at=earlier, updated_at=earlier,
    )
    add_note(agent, customer)
    agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": new_id(), "body": "Hi!"})
    add_note(agent, customer)
    pipeline().catch_up()
    push_group().catch_up()
    (push,) = PushDelivery.objects.all()  # the agent's message only
    assert push.unread == 1 and SECRET not in json.dumps(push.message)
    assert customer.get("/api/v1/badge").json()["unread"] == 1
