"""The servers come up the way the README says and answer as one service."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import http

pytestmark = pytest.mark.e2e


def test_the_embedded_server_is_healthy_and_serves_the_api(stack):
    status, health = http("GET", f"{stack.url}/healthz")
    assert status == 200
    assert health["database"] == "ok" and health["channel_layer"] == "ok"
    assert health["consumers"]["pipeline"]["running"] is True
    customer = stack.register_customer()
    status, sent = http("POST", f"{stack.url}/api/v1/messages", {"message_id": str(uuid.uuid4()), "body": "hello"}, token=customer["token"])
    assert status == 201
    status, listed = http("GET", f"{stack.url}/api/v1/messages?after=0&min_position={sent['position']}", token=customer["token"])
    assert status == 200 and [m["body"] for m in listed["messages"]] == ["hello"]


def test_a_429_carries_its_reason_phrase(stack):
    """Throttled sign-ins (accounts.throttle) answer 429; Daphne sends the phrase with it."""
    import http.client
    import json
    from urllib.parse import urlsplit

    where = urlsplit(stack.url)
    body = json.dumps({"username": "nobody-" + uuid.uuid4().hex[:8], "password": "wrong"})
    seen = []
    for _ in range(15):
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        conn.request("POST", "/api/v1/auth/agent", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        seen.append((r.status, r.reason))
        r.read()
        conn.close()
        if r.status == 429:
            break
    assert seen[-1] == (429, "Too Many Requests"), seen
    assert all(reason != "Unknown Status" for _, reason in seen)
