"""The Messages section of the contract, through HTTP."""

from __future__ import annotations

import json

import pytest

from eventstore.models import StoredEvent
from tests.conftest import new_id

pytestmark = pytest.mark.django_db(transaction=True)


def count(event_type: str) -> int:
    return StoredEvent.objects.filter(event_type=event_type).count()


def test_a_customer_sends_a_message_and_gets_it_back_with_its_position(customer, project):
    mid = new_id()
    r = customer.post("/api/v1/messages", {"message_id": mid, "body": "  Hello  "})
    assert r.status_code == 201
    body = r.json()
    assert body["message"]["message_id"] == mid
    assert body["message"]["body"] == "Hello"
    assert body["message"]["sender"]["kind"] == "customer"
    assert body["message"]["sender"]["id"] == customer.id
    assert body["position"] == body["message"]["position"] > 0
    project()
    listed = customer.get("/api/v1/messages", after=0).json()
    assert [m["message_id"] for m in listed["messages"]] == [mid]
    assert listed["messages"][0]["sender"]["name"] == "Ada Lovelace"
    assert listed["position"] >= body["position"]


def test_the_same_send_again_answers_200_with_the_same_message_and_appends_nothing(customer):
    mid = new_id()
    first = customer.post("/api/v1/messages", {"message_id": mid, "body": "hi"})
    again = customer.post("/api/v1/messages", {"message_id": mid, "body": "hi"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["message"] == first.json()["message"]
    assert count("MessageSent") == 1


def test_the_same_message_id_with_another_body_is_a_conflict(customer):
    mid = new_id()
    customer.post("/api/v1/messages", {"message_id": mid, "body": "hi"})
    r = customer.post("/api/v1/messages", {"message_id": mid, "body": "different"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "message_id_conflict"
    assert count("MessageSent") == 1


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'{"body": "hi"}', 400, "missing_field"),
        (b'{"message_id": "not-a-uuid", "body": "hi"}', 400, "invalid_field"),
        (b'{"message_id": 12, "body": "hi"}', 400, "invalid_field"),
        (b'{"message_id": "7b3f2d9e-3c1a-4f7e-9a51-2f0f1b8d6a11", "body": 5}', 400, "invalid_field"),
        (b'{"message_id": "7b3f2d9e-3c1a-4f7e-9a51-2f0f1b8d6a11", "body": "   "}', 400, "invalid_body"),
        (b'{"message_id": "7b3f2d9e-3c1a-4f7e-9a51-2f0f1b8d6a11", "body": "' + b"x" * 4001 + b'"}', 400, "invalid_body"),
        (b'{"message_id": "7b3f2d9e-3c1a-4f7e-9a51-2f0f1b8d6a11", "body": "' + b"x" * 70_000 + b'"}', 413, "body_too_large"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "body_too_large"),
        (b"[" * 20_000 + b"]" * 20_000, 400, "malformed_json"),
        (b'{"message_id": "7b3f2d9e-3c1a-4f7e-9a51-2f0f1b8d6a11", "body": "a\\u0000b"}', 400, "invalid_field"),
        (b'{"message_id": "7b3f2d9e-3c1a-4f7e-9a51-2f0f1b8d6a11", "body": "\\ud800"}', 400, "invalid_field"),
    ],
)
def test_bad_send_requests_get_a_clear_4xx_and_store_nothing(customer, raw, status, code):
    r = customer.post("/api/v1/messages", raw=raw)
    assert r.status_code == status, r.content
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["detail"]
    assert StoredEvent.objects.filter(event_type__startswith="Message").count() == 0


def test_a_non_json_content_type_is_refused(customer):
    r = customer.post("/api/v1/messages", raw=b"message_id=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415
    assert count("MessageSent") == 0


@pytest.mark.parametrize(
    "token",
    [
        "",
        "pc.not-a-token",
        "pa_forged",
        "garbage",
    ],
)
def test_missing_or_forged_tokens_are_refused(customer, token):
    customer.token = token
    r = customer.post("/api/v1/messages", {"message_id": new_id(), "body": "hi"})
    assert r.status_code == 401
    assert count("MessageSent") == 0


def test_a_token_signed_with_another_key_or_widened_is_refused(customer, settings):
    from accounts.tokens import issue_customer_token

    settings.CUSTOMER_TOKEN_KEY = "another-key"
    forged = issue_customer_token(customer.id)
    settings.CUSTOMER_TOKEN_KEY = ""
    customer.token = forged
    assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": "hi"}).status_code == 401
    # Swapping the customer id inside a genuine token breaks its signature.
    genuine = issue_customer_token(customer.id)
    customer.token = genuine.replace(customer.id, new_id())
    assert customer.get("/api/v1/badge").status_code == 401
    assert count("MessageSent") == 0


def test_an_expired_customer_token_is_refused_with_its_own_code(customer, settings):
    settings.CUSTOMER_TOKEN_MAX_AGE = -1
    r = customer.get("/api/v1/badge")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "token_expired"


def test_rotating_the_token_key_revokes_existing_tokens(customer, settings):
    assert customer.get("/api/v1/badge").status_code == 200
    settings.CUSTOMER_TOKEN_KEY = "rotated"
    assert customer.get("/api/v1/badge").status_code == 401


def test_an_agent_token_cannot_act_as_a_customer(agent):
    r = agent.post("/api/v1/messages", {"message_id": new_id(), "body": "hi"})
    assert r.status_code == 403
    assert count("MessageSent") == 0


def test_a_customer_token_cannot_use_agent_endpoints(customer):
    assert customer.get("/api/v1/conversations").status_code == 403
    r = customer.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": new_id(), "body": "x"})
    assert r.status_code == 403
    assert count("MessageSent") == 0


def test_an_agent_replies_and_the_customer_reads_it(customer, agent, project):
    project()
    mid = new_id()
    r = agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": mid, "body": "How can I help?"})
    assert r.status_code == 201
    assert r.json()["message"]["sender"] == {"kind": "agent", "id": agent.id, "name": "Grace"}
    project()
    assert customer.get("/api/v1/badge").json()["unread"] == 1
    read = customer.post(f"/api/v1/messages/{mid}/read")
    assert read.status_code == 200
    position = read.json()["position"]
    again = customer.post(f"/api/v1/messages/{mid}/read")
    assert again.json()["position"] == position
    assert count("MessageMarkedAsRead") == 1
    project()
    assert customer.get("/api/v1/badge").json() == {"unread": 0, "position": position}


def test_another_customers_message_is_not_found_for_read_and_edit(make_customer, agent, project):
    alice, bob = make_customer("Alice"), make_customer("Bob")
    project()
    mid = new_id()
    agent.post(f"/api/v1/conversations/{alice.id}/messages", {"message_id": mid, "body": "for alice"})
    own = new_id()
    alice.post("/api/v1/messages", {"message_id": own, "body": "mine"})
    assert bob.post(f"/api/v1/messages/{mid}/read").status_code == 404
    r = bob.patch(f"/api/v1/messages/{own}", {"body": "hijacked"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "message_not_found"
    project()
    assert bob.get("/api/v1/messages", after=0).json()["messages"] == []
    assert count("MessageMarkedAsRead") == 0 and count("MessageEdited") == 0


def test_only_the_sender_edits_and_an_edit_answers_with_its_position(customer, agent, project):
    project()
    mid = new_id()
    customer.post("/api/v1/messages", {"message_id": mid, "body": "helo"})
    assert agent.patch(f"/api/v1/messages/{mid}", {"body": "hello"}).status_code == 403
    r = customer.patch(f"/api/v1/messages/{mid}", {"body": "hello"})
    assert r.status_code == 200
    assert r.json()["message"]["body"] == "hello"
    assert r.json()["message"]["edited_at"] is not None
    assert count("MessageEdited") == 1


def test_unknown_messages_and_customers_are_404(customer, agent):
    assert customer.post(f"/api/v1/messages/{new_id()}/read").status_code == 404
    assert customer.patch(f"/api/v1/messages/{new_id()}", {"body": "x"}).status_code == 404
    r = agent.post(f"/api/v1/conversations/{new_id()}/messages", {"message_id": new_id(), "body": "x"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "customer_not_found"
    assert StoredEvent.objects.filter(stream_id__startswith="message-").count() == 0


def test_listing_after_a_position_returns_only_later_changes(customer, agent, project):
    project()
    first, second = new_id(), new_id()
    customer.post("/api/v1/messages", {"message_id": first, "body": "one"})
    p2 = customer.post("/api/v1/messages", {"message_id": second, "body": "two"}).json()["position"]
    project()
    everything = customer.get("/api/v1/messages", after=0).json()
    assert [m["message_id"] for m in everything["messages"]] == [first, second]
    edit = customer.patch(f"/api/v1/messages/{first}", {"body": "one!"}).json()["position"]
    project()
    later = customer.get("/api/v1/messages", after=p2).json()
    assert [(m["message_id"], m["body"]) for m in later["messages"]] == [(first, "one!")]
    assert later["position"] == edit
    paged = customer.get("/api/v1/messages", after=0, limit=1).json()
    assert len(paged["messages"]) == 1
    rest = customer.get("/api/v1/messages", after=paged["position"]).json()
    assert len(rest["messages"]) == 1


def test_an_unknown_after_position_is_a_400(customer):
    r = customer.get("/api/v1/messages", after=987654)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_position"
    assert customer.get("/api/v1/messages", after="x").status_code == 400


def test_badge_with_min_position_waits_for_the_projection(customer, agent, project):
    """A read with min_position answers once the projection has processed it."""
    import threading

    from django.db import connection

    project()
    position = agent.post(
        f"/api/v1/conversations/{customer.id}/messages", {"message_id": new_id(), "body": "ping"}
    ).json()["position"]

    def later():
        try:
            project()
        finally:
            connection.close()

    timer = threading.Timer(0.3, later)
    timer.start()
    r = customer.get("/api/v1/badge", min_position=position)
    timer.join()
    assert r.json() == {"unread": 1, "position": position}


def test_agents_log_in_for_a_token_and_bad_credentials_are_401(agent, client):
    import json

    r = client.post("/api/v1/auth/agent", json.dumps({"username": "grace", "password": "pw-grace"}), content_type="application/json")
    assert r.status_code == 201
    assert r.json()["token"].startswith("pa_")
    bad = client.post("/api/v1/auth/agent", json.dumps({"username": "grace", "password": "nope"}), content_type="application/json")
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_credentials"


def test_a_revoked_agent_token_stops_working(agent):
    assert agent.get("/api/v1/conversations").status_code == 200
    assert agent.delete("/api/v1/auth/agent/token").status_code == 204
    assert agent.get("/api/v1/conversations").status_code == 401


def test_cookie_sessions_need_csrf_for_writes(agent, customer, project):
    from django.contrib.auth import get_user_model
    from django.test import Client

    project()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(username="grace"))
    assert browser.get("/api/v1/conversations").status_code == 200
    r = browser.post(
        f"/api/v1/conversations/{customer.id}/messages",
        '{"message_id": "%s", "body": "hi"}' % new_id(),
        content_type="application/json",
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "csrf_failed"
    assert count("MessageSent") == 0


def test_repeated_failed_agent_logins_are_throttled(agent, client):
    import json

    def attempt(password):
        return client.post("/api/v1/auth/agent", json.dumps({"username": "grace", "password": password}), content_type="application/json")

    assert [attempt("wrong").status_code for _ in range(10)] == [401] * 10
    throttled = attempt("pw-grace")  # even the right password, until the window passes
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "too_many_attempts"


@pytest.mark.parametrize("before", ["yesterday", "2026-11-26T10:00:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_bad_conversations_before_is_a_400(agent, before):
    r = agent.get("/api/v1/conversations", before=before)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_parameter"


def test_a_message_id_someone_else_used_is_a_conflict_that_reveals_nothing_about_their_message(make_customer, make_agent, project):
    """A send never answers "not found": whoever reuses an id another party
    used (another customer, an agent, another agent) gets 409, with exactly
    the answer the id's own sender gets for a changed body."""
    alice, bob = make_customer("Alice"), make_customer("Bob")
    grace, alan = make_agent("grace"), make_agent("alan")
    project()
    hers, graces = new_id(), new_id()
    assert alice.post("/api/v1/messages", {"message_id": hers, "body": "my secret order 1043"}).status_code == 201
    assert grace.post(f"/api/v1/conversations/{alice.id}/messages", {"message_id": graces, "body": "hello Alice"}).status_code == 201
    before = StoredEvent.objects.count()

    own_conflicts = {
        hers: alice.post("/api/v1/messages", {"message_id": hers, "body": "changed"}),
        graces: grace.post(f"/api/v1/conversations/{alice.id}/messages", {"message_id": graces, "body": "changed"}),
    }
    for mid, own in own_conflicts.items():
        assert own.status_code == 409, own.json()
        attempts = [
            bob.post("/api/v1/messages", {"message_id": mid, "body": "my secret order 1043"}),
            bob.post("/api/v1/messages", {"message_id": mid, "body": "hello Alice"}),
            bob.post("/api/v1/messages", {"message_id": mid, "body": "something else"}),
            grace.post(f"/api/v1/conversations/{bob.id}/messages", {"message_id": mid, "body": "hello Alice"}),
            alan.post(f"/api/v1/conversations/{alice.id}/messages", {"message_id": mid, "body": "hello Alice"}),
            alan.post(f"/api/v1/conversations/{alice.id}/messages", {"message_id": mid, "body": "my secret order 1043"}),
        ]
        if mid == graces:  # the customer the agent wrote to cannot take over the agent's id either
            attempts.append(alice.post("/api/v1/messages", {"message_id": mid, "body": "hello Alice"}))
        else:  # nor can an agent take over the customer's
            attempts.append(grace.post(f"/api/v1/conversations/{alice.id}/messages", {"message_id": mid, "body": "my secret order 1043"}))
        for r in attempts:
            assert r.status_code == 409, r.json()
            assert r.json() == own.json()  # the same words as for one's own id: nothing about whose it is
            assert r.json()["error"]["code"] == "message_id_conflict"
            text = json.dumps(r.json())
            for secret in ("secret", "1043", "Alice", alice.id, "grace"):
                assert secret not in text

    assert StoredEvent.objects.count() == before
    project()
    assert bob.get("/api/v1/messages", after=0).json()["messages"] == []
