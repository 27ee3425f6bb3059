"""Outbound webhooks against a real local receiver that verifies every
signature with the standardwebhooks library."""

from __future__ import annotations

import datetime as dt

import pytest
from standardwebhooks import Webhook

from outbound.models import WebhookDelivery, WebhookEndpoint, WebhookState
from tests.integration.webhook_support import (
    Clock,
    deliver_until,
    edits,
    integration,
    reads,
    receiver,  # noqa: F401  (fixture)
    register,
    run_pipeline,
    says,
    states,
    worker,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_event_arrives_in_order_verified_and_retries_carry_the_same_id(receiver, client, customer, agent):
    receiver.fail_first = 2
    register(client, receiver)
    asked = says(customer, "Where is my order?")
    answer = says(customer, "It left on Tuesday", agent=agent)
    edits(customer, asked, "Where is my order #42?")
    reads(customer, answer)
    r = integration(client, "patch", f"/api/v1/customers/{customer.id}", {"name": "Ada King"})
    assert r.status_code == 200, r.content
    run_pipeline()

    deliver_until(worker(), receiver, 5)

    accepted = receiver.accepted()
    assert all(req.body is not None for req in receiver.requests), [req.error for req in receiver.requests]
    assert [req.body["type"] for req in accepted] == [
        "message.created", "message.created", "message.edited", "message.read", "customer.updated",
    ]
    positions = [req.body["data"].get("position", 0) for req in accepted[:4]]
    assert positions == sorted(positions)
    # Each id was tried three times (two 500s, then accepted), same id, same body, one after the other.
    ids = [req.webhook_id for req in receiver.requests]
    assert ids == [i for i in dict.fromkeys(ids) for _ in range(3)]
    for wid in dict.fromkeys(ids):
        bodies = {str(req.body) for req in receiver.requests if req.webhook_id == wid}
        assert len(bodies) == 1
        assert [req.body["id"] for req in receiver.requests if req.webhook_id == wid] == [wid] * 3
    assert accepted[0].body["data"]["body"] == "Where is my order?"  # as of its event, not the edit
    assert accepted[2].body["data"]["body"] == "Where is my order #42?"
    assert accepted[3].body["data"]["read_at"] is not None
    assert accepted[4].body["data"] == {
        "customer_id": customer.id, "name": "Ada King", "email": "ada@example.com", "phone": "", "external_id": None,
    }
    assert states() == {"delivered": 5}
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {3}


def test_a_message_sent_and_read_in_one_batch_is_announced_unread_then_read(receiver, client, customer, agent):
    register(client, receiver, ["message.created", "message.read"])
    mid = says(customer, "Your refund is on its way", agent=agent)
    reads(customer, mid)
    run_pipeline()
    deliver_until(worker(), receiver, 2)
    created, read = [req.body for req in receiver.accepted()]
    assert (created["type"], created["data"]["read_at"]) == ("message.created", None)
    assert (read["type"], read["data"]["message_id"]) == ("message.read", mid)
    assert read["data"]["read_at"] is not None
    assert created["data"]["sender"] == {"kind": "agent", "id": agent.id, "name": "Grace"}


def test_events_before_registration_and_unsubscribed_types_are_not_sent(receiver, client, customer):
    says(customer, "Before anyone listened")
    run_pipeline()
    register(client, receiver, ["message.read"])
    says(customer, "After, but not a read")
    run_pipeline()
    assert WebhookDelivery.objects.count() == 0


def test_a_later_event_waits_for_an_earlier_one_to_be_given_up(receiver, client, customer, settings):
    receiver.status = 503
    register(client, receiver, ["message.created"])
    says(customer, "first")
    says(customer, "second")
    run_pipeline()
    clock = Clock()
    w = worker(clock)
    w.run_once()
    w.run_once()
    # Only the first was tried: the second waits behind it in the customer's lane.
    assert {req.body["data"]["body"] for req in receiver.requests} == {"first"}
    clock.advance(settings.WEBHOOK_RETRY_FOR_SECONDS + 60)
    w.run_once()  # past the retry window: the first is given up...
    first, second = WebhookDelivery.objects.order_by("id")
    assert first.state == WebhookState.FAILED and first.reason.startswith("gave up: 503")
    assert first.last_status == 503
    receiver.status = None
    w.drain()  # ...and the second goes
    assert receiver.accepted()[-1].body["data"]["body"] == "second"


def test_customers_do_not_wait_for_each_other(receiver, client, make_customer):
    ada, bob = make_customer("Ada"), make_customer("Bob", email="bob@example.com")
    register(client, receiver, ["message.created"])
    says(ada, "stuck")
    run_pipeline()
    receiver.status = 500
    w = worker(backoff_base=600.0, backoff_cap=600.0)  # Ada's retry is minutes away
    w.run_once()
    receiver.status = None
    says(bob, "flows")
    run_pipeline()
    w.run_once()
    assert [req.body["data"]["body"] for req in receiver.accepted()] == ["flows"]


def test_410_disables_the_endpoint_and_fails_what_it_had_pending(receiver, client, customer):
    ep = register(client, receiver, ["message.created"])
    says(customer, "one")
    says(customer, "two")
    run_pipeline()
    receiver.status = 410
    worker().drain()
    assert len(receiver.requests) == 1
    endpoint = WebhookEndpoint.objects.get(pk=ep["endpoint_id"])
    assert endpoint.disabled_at is not None
    assert states() == {"failed": 2}
    listed = integration(client, "get", "/api/v1/webhook-endpoints").json()["endpoints"]
    assert [(e["endpoint_id"], e["disabled"]) for e in listed] == [(ep["endpoint_id"], True)]
    says(customer, "three")
    run_pipeline()
    assert WebhookDelivery.objects.count() == 2  # nothing more is queued


def test_a_redirect_is_never_followed(receiver, client, customer):
    register(client, receiver, ["message.created"])
    says(customer, "hello")
    run_pipeline()
    receiver.status = 307
    worker().run_once()
    row = WebhookDelivery.objects.get()
    assert (row.state, row.last_status, row.attempts) == (WebhookState.PENDING, 307, 1)
    assert "never followed" in row.reason
    assert len(receiver.requests) == 1


def test_after_a_rotation_both_secrets_verify_for_the_overlap(receiver, client, customer, settings):
    ep = register(client, receiver, ["message.created"])
    old = receiver.secret
    r = integration(client, "post", f"/api/v1/webhook-endpoints/{ep['endpoint_id']}/rotate-secret", {})
    assert r.status_code == 200, r.content
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    receiver.secret = new
    says(customer, "rotated")
    run_pipeline()
    worker().drain()
    (req,) = receiver.accepted()
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    raw = req.headers  # both secrets verify the same delivery
    body = WebhookDelivery.objects.get().body
    for secret in (old, new):
        assert Webhook(secret).verify(body, raw)["type"] == "message.created"

    # After the overlap only the new secret signs.
    WebhookEndpoint.objects.update(previous_secret_until=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
    says(customer, "later")
    run_pipeline()
    worker().drain()
    assert len(receiver.accepted()[-1].headers["webhook-signature"].split(" ")) == 1


def test_redeliver_queues_a_delivered_row_again_with_the_same_id(receiver, client, customer):
    from django.conf import settings as s

    from outbound import outbox

    register(client, receiver, ["message.created"])
    says(customer, "again please")
    run_pipeline()
    worker().drain()
    row = WebhookDelivery.objects.get()
    outbox.redeliver([row.pk], now=dt.datetime.now(dt.timezone.utc), retry_for=s.WEBHOOK_RETRY_FOR_SECONDS)
    worker().drain()
    assert [req.webhook_id for req in receiver.accepted()] == [str(row.event_id)] * 2


def test_workflow_changes_and_notes_are_announced_as_of_their_event(receiver, client, customer, agent):
    register(client, receiver, ["conversation.updated", "note.created", "message.created"])
    says(customer, "Is anyone there?")
    base = f"/api/v1/conversations/{customer.id}"
    assert agent.post(f"{base}/claim").status_code == 200
    note = agent.post(f"{base}/notes", {"note_id": "6f1d3a9e-0c41-4f0e-9d7b-2b8c4f7e1a11", "body": "VIP <b>customer</b>"})
    assert note.status_code == 201, note.content
    assert agent.post(f"{base}/status", {"status": "resolved"}).status_code == 200
    run_pipeline()
    final = agent.get(base).json()["conversation"]
    expected = 1 + 3  # the message, the claim, the note, the status (a workflow worker may add clock events)
    deliver_until(worker(), receiver, expected)
    bodies = [req.body for req in receiver.accepted()]
    types = [b["type"] for b in bodies]
    assert types[0] == "message.created" and "note.created" in types
    updates = [b["data"] for b in bodies if b["type"] == "conversation.updated"]
    # The claim shows the assignee while still open; the last update is the resolved conversation the API shows.
    claimed = next(u for u in updates if u["assignee"])
    assert claimed["assignee"]["id"] == agent.id and claimed["status"] == "open"
    assert updates[-1]["status"] == "resolved"
    # As the API shows it, but for the caller's own unread mark (an agent's, not the host application's).
    assert {k: v for k, v in updates[-1].items() if k != "position"} == {
        k: v for k, v in final.items() if k not in ("position", "marked_unread")}
    noted = next(b["data"] for b in bodies if b["type"] == "note.created")
    assert (noted["kind"], noted["body"], noted["author"]["id"]) == ("note", "VIP <b>customer</b>", agent.id)
    # Webhooks go to the host application only: no customer ever receives a note through them,
    # and message.created carries no note.
    assert all(b["type"] != "message.created" or b["data"].get("kind") != "note" for b in bodies)


def test_the_operators_admin_shows_recent_deliveries_and_redelivers(receiver, client, customer, admin_client):
    endpoint = register(client, receiver, ["message.created"])
    says(customer, "for the record")
    run_pipeline()
    worker().drain()
    row = WebhookDelivery.objects.get()
    assert row.state == "delivered"
    page = admin_client.get(f"/admin/outbound/webhookendpoint/{endpoint['endpoint_id']}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "message.created" in html and "delivered" in html
    assert endpoint["secret"] not in html  # the secret is never shown again
    listing = admin_client.get("/admin/outbound/webhookdelivery/", {"state": "delivered"})
    assert listing.status_code == 200 and str(row.pk) in listing.content.decode()
    done = admin_client.post("/admin/outbound/webhookdelivery/", {"action": "redeliver", "_selected_action": [row.pk]})
    assert done.status_code == 302
    row.refresh_from_db()
    assert row.state == "pending"
    worker().drain()
    assert [req.webhook_id for req in receiver.accepted()] == [str(row.event_id)] * 2
