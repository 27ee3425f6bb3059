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
