"""Agents' profiles: the display name everyone is shown, and a login username
that never reaches a customer (HTTP answers, frames, push, email, webhooks)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.principals import issue_agent_token
from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from eventstore.events import Cursor
from eventstore.store import EventStore
from notifications.models import EmailOutbox, PushDelivery
from outbound.models import WebhookDelivery
from project.asgi import application
from project.bootstrap import pipeline
from readmodels import asof
from realtime import frames
from realtime.dispatcher import stop_dispatchers
from tests.conftest import Caller, new_id
from tests.integration.test_push_support import push, run_pipeline, subscribe, vapid_keys  # noqa: F401
from tests.integration.webhook_support import integration, receiver, register  # noqa: F401
from tests.support.mailflow import later, work

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "ada.login-7"


def agent_called(username: str, first: str = "", last: str = "") -> Caller:
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True, first_name=first, last_name=last)
    return Caller(Client(), issue_agent_token(user), str(user.pk))


def reply(agent: Caller, customer: Caller, body: str) -> dict[str, Any]:
    r = agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": new_id(), "body": body})
    assert r.status_code == 201, r.content
    return r.json()


def everything_a_customer_can_be_shown(customer: Caller) -> str:
    """Every answer, frame, push, email and webhook of this test, as one text."""
    pipeline().catch_up()
    log = EventStore().read_all(Cursor.start(), limit=10_000)
    envelopes = frames.envelopes(log, asof.stored(log))
    shown = [
        customer.get("/api/v1/messages").content.decode(),
        customer.get("/api/v1/messages/search", q="parcel").content.decode(),
        *(f for e in envelopes if e.customer_id == customer.id for f in e.to_customer),
        *(json.dumps(m) for m in PushDelivery.objects.values_list("message", flat=True)),
        *(f"{e.subject}\n{e.text}\n{e.html}" for e in EmailOutbox.objects.all()),
        *WebhookDelivery.objects.values_list("body", flat=True),
    ]
    return "\n".join(shown)


# -- the endpoint --------------------------------------------------------------------


def test_an_agent_reads_and_changes_their_display_name(make_agent):
    grace = make_agent("grace")
    r = grace.get("/api/v1/agents/me")
    assert r.status_code == 200, r.content
    assert r.json() == {"id": grace.id, "username": "grace", "display_name": "", "name": "Grace"}
    r = grace.patch("/api/v1/agents/me", {"display_name": "  Grace   Hopper  "})
    assert r.status_code == 200, r.content
    assert r.json() == {"id": grace.id, "username": "grace", "display_name": "Grace Hopper", "name": "Grace Hopper"}
    assert grace.get("/api/v1/agents/me").json()["name"] == "Grace Hopper"
    assert [a["name"] for a in grace.get("/api/v1/agents").json()["agents"]] == ["Grace Hopper"]
    # An empty name clears it: the name Django has comes back, never the login.
    assert grace.patch("/api/v1/agents/me", {"display_name": ""}).json()["name"] == "Grace"


@pytest.mark.parametrize("value, code", [
    ("x" * 65, "invalid_display_name"),
    ("Grace\u0000", "invalid_display_name"),
    ("Grace\nHopper", "invalid_display_name"),
    ("Gr\u202eace", "invalid_display_name"),  # a right-to-left override: formatting, not a name
    ("Gr\u200bace", "invalid_display_name"),  # a zero-width space
    (42, "invalid_display_name"),
    (None, "invalid_display_name"),
])
def test_a_display_name_that_is_not_one_is_refused_and_nothing_changes(make_agent, value, code):
    grace = make_agent("grace")
    grace.patch("/api/v1/agents/me", {"display_name": "Grace H."})
    r = grace.patch("/api/v1/agents/me", {"display_name": value})
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code
    assert grace.get("/api/v1/agents/me").json()["display_name"] == "Grace H."


def test_a_patch_without_the_field_or_json_is_refused(make_agent):
    grace = make_agent("grace")
    assert grace.patch("/api/v1/agents/me", {}).json()["error"]["code"] == "missing_field"
    r = grace.client.patch("/api/v1/agents/me", "name=x", content_type="text/plain", HTTP_AUTHORIZATION=f"Bearer {grace.token}")
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type")


def test_each_agent_changes_only_their_own_name_and_customers_are_refused(make_agent, customer, client):
    grace, linus = make_agent("grace"), make_agent("linus")
    assert grace.patch("/api/v1/agents/me", {"display_name": "Grace H."}).status_code == 200
    assert linus.get("/api/v1/agents/me").json()["name"] == "Linus"
    assert customer.get("/api/v1/agents/me").json()["error"]["code"] == "forbidden"
    r = customer.patch("/api/v1/agents/me", {"display_name": "Hacker"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert client.get("/api/v1/agents/me").status_code == 401


def test_a_session_patch_needs_the_csrf_token(make_agent):
    make_agent("grace")
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="grace", password="pw-grace")
    r = browser.patch("/api/v1/agents/me", json.dumps({"display_name": "G"}), content_type="application/json")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "csrf_failed")


# -- what customers see -----------------------------------------------------------------


def test_an_agent_without_a_name_is_shown_as_support_and_never_by_their_login(
    customer, settings, push, vapid_keys, receiver, client,  # noqa: F811
):
    settings.PARLEY_EMAIL_FALLBACK_SECONDS = 600
    register(client, receiver, ["message.created", "conversation.updated"])
    subscribe(push, customer, vapid_keys)
    ada = agent_called(LOGIN)
    reply(ada, customer, "Your parcel left the warehouse.")
    run_pipeline()
    from project.bootstrap import group

    group("webhooks").catch_up()
    work(later())  # the email of the unread streak

    shown = everything_a_customer_can_be_shown(customer)
    assert LOGIN not in shown
    assert EmailOutbox.objects.count() == 1 and PushDelivery.objects.count() == 1
    assert WebhookDelivery.objects.count() >= 1
    messages = customer.get("/api/v1/messages").json()["messages"]
    assert [m["sender"]["name"] for m in messages] == ["Support"]
    assert PushDelivery.objects.get().message["sender_name"] == "Support"


def test_customers_see_the_display_name_on_every_message_old_ones_included(customer, settings, receiver, client):  # noqa: F811
    settings.PARLEY_EMAIL_FALLBACK_SECONDS = 600
    register(client, receiver, ["message.created"])
    ada = agent_called(LOGIN, first="Ada")
    # A message from before profiles: its event names the agent by their login.
    send_message(SendMessage(uuid.uuid4(), uuid.UUID(customer.id), Actor(SenderKind.AGENT, ada.id, LOGIN), "Hello"))
    reply(ada, customer, "First answer")
    assert ada.post(f"/api/v1/conversations/{customer.id}/notes", {"note_id": new_id(), "body": "VIP"}).status_code == 201
    assert ada.patch("/api/v1/agents/me", {"display_name": "Ada from Support"}).status_code == 200
    reply(ada, customer, "Second answer, about your parcel")
    from project.bootstrap import group

    pipeline().catch_up()
    group("webhooks").catch_up()
    work(later())

    messages = customer.get("/api/v1/messages").json()["messages"]
    assert [m["sender"]["name"] for m in messages] == ["Ada from Support"] * 3
    [found] = customer.get("/api/v1/messages/search", q="parcel").json()["results"]
    assert found["message"]["sender"]["name"] == "Ada from Support"
    email = EmailOutbox.objects.get()
    assert "Ada from Support" in email.text and "Ada from Support" in email.html
    bodies = [json.loads(b) for b in WebhookDelivery.objects.order_by("position").values_list("body", flat=True)]
    # Webhooks show the name as of their event: after the rename, the new one.
    assert bodies[-1]["data"]["sender"]["name"] == "Ada from Support"
    # The export an access request hands the customer names the agent the same way.
    export = integration(client, "get", f"/api/v1/customers/{customer.id}/export")
    assert export.status_code == 200, export.content
    assert [m["sender"]["name"] for m in export.json()["messages"]] == ["Ada from Support"] * 3
    assert [n["author_name"] for n in export.json()["notes"]] == ["Ada from Support"]
    assert LOGIN not in export.content.decode()
    assert LOGIN not in everything_a_customer_can_be_shown(customer)


def test_agents_lists_and_conversations_show_the_assignee_and_author_by_their_current_name(make_agent, customer):
    grace = make_agent("grace")
    cid = customer.id
    assert grace.post(f"/api/v1/conversations/{cid}/claim").status_code == 200
    grace.post(f"/api/v1/conversations/{cid}/notes", {"note_id": new_id(), "body": "VIP"})
    reply(grace, customer, "Hi")
    grace.patch("/api/v1/agents/me", {"display_name": "Grace H."})
    pipeline().catch_up()
    [conv] = grace.get("/api/v1/conversations").json()["conversations"]
    assert conv["assignee"] == {"id": grace.id, "name": "Grace H."}
    assert conv["last_message"]["sender"]["name"] == "Grace H."
    items = grace.get(f"/api/v1/conversations/{cid}/messages").json()["messages"]
    assert {i.get("kind", "message"): (i.get("author") or i["sender"])["name"] for i in items} == {
        "note": "Grace H.", "message": "Grace H."}


def test_a_deleted_agents_messages_name_the_team_not_the_old_name(customer):
    ada = agent_called(LOGIN)
    send_message(SendMessage(uuid.uuid4(), uuid.UUID(customer.id), Actor(SenderKind.AGENT, ada.id, LOGIN), "Hello"))
    get_user_model().objects.filter(pk=int(ada.id)).delete()
    pipeline().catch_up()
    [message] = customer.get("/api/v1/messages").json()["messages"]
    assert message["sender"] == {"kind": "agent", "id": ada.id, "name": "Support"}


@pytest.mark.asyncio
async def test_typing_and_live_frames_name_the_agent_by_their_display_name(customer):
    ada = await sync_to_async(agent_called)(LOGIN)
    await sync_to_async(ada.patch)("/api/v1/agents/me", {"display_name": "Ada L."})
    try:
        cws = WebsocketCommunicator(application, f"/ws/v1/?token={customer.token}")
        aws = WebsocketCommunicator(application, f"/ws/v1/?token={ada.token}")
        assert (await cws.connect())[0] and (await aws.connect())[0]
        await aws.send_json_to({"type": "typing", "customer_id": customer.id})
        frame = json.loads(await cws.receive_from(timeout=10))
        assert frame["sender"] == {"kind": "agent", "id": ada.id, "name": "Ada L."}
        await aws.send_json_to({"type": "message.send", "customer_id": customer.id, "message_id": new_id(), "body": "hi"})
        # The pipeline runs once the send is committed (its ack), not while the socket still handles it.
        while json.loads(await aws.receive_from(timeout=10))["type"] != "ack":
            pass
        await pipeline().catch_up_async()
        seen = []
        while not any(f["type"] == "message.sent" for f in seen):
            seen.append(json.loads(await cws.receive_from(timeout=10)))
        assert LOGIN not in json.dumps(seen)
        assert [f["message"]["sender"]["name"] for f in seen if f["type"] == "message.sent"] == ["Ada L."]
        await cws.disconnect()
        await aws.disconnect()
    finally:
        await asyncio.wait_for(stop_dispatchers(), 5)
