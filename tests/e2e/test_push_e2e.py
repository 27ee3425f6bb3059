"""Push through a real server: `manage.py serve` (web, workers and push delivery
in one process) sending to the local Web Push service over real HTTP."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from notifications.vapid import generate_vapid_keys
from tests.e2e.conftest import Stack, http, start_stack, stop_stack
from tests.support.pushservice import PushService

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def push_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, PushService, Any]]:
    keys = generate_vapid_keys()
    with PushService(expected_vapid_key=keys.public_key) as push:
        stack, drop = start_stack(
            tmp_path_factory.mktemp("push"),
            extra_env={
                "VAPID_PRIVATE_KEY": keys.private_key,
                "VAPID_PUBLIC_KEY": keys.public_key,
                "VAPID_SUBJECT": "mailto:support@parley.test",
                "PUSH_ENDPOINT_INSECURE_HOSTS": push.base_url.removeprefix("http://"),
            },
        )
        try:
            yield stack, push, keys
        finally:
            stop_stack(stack)
            drop()


def agent_send(stack: Stack, agent: str, customer_id: str, mid: str, body: str) -> tuple[int, Any]:
    """Send as an agent, waiting until the directory projection knows a brand-new customer."""
    deadline = time.monotonic() + 30
    while True:
        status, answer = http(
            "POST", f"{stack.url}/api/v1/conversations/{customer_id}/messages",
            {"message_id": mid, "body": body}, token=agent,
        )
        if status != 404 or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.1)


def test_the_service_worker_is_served_from_the_root(push_stack):
    stack, _, _ = push_stack
    with urllib.request.urlopen(f"{stack.url}/sw.js", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/javascript")
        assert resp.headers["Service-Worker-Allowed"] == "/"


def test_a_phone_gets_the_message_then_the_cleared_badge(push_stack):
    stack, push, keys = push_stack
    customer = stack.register_customer()
    agent = stack.agent_token()
    status, body = http("GET", f"{stack.url}/api/v1/push/public-key")
    assert (status, body) == (200, {"public_key": keys.public_key})

    phone = push.new_subscription(application_server_key=body["public_key"])
    status, body = http("POST", f"{stack.url}/api/v1/push-subscriptions", phone.to_json(), token=customer["token"])
    assert status == 201, body

    mid = str(uuid.uuid4())
    status, sent = agent_send(stack, agent, customer["customer_id"], mid, "We found your parcel")
    assert status == 201, sent
    [first] = push.wait_for(1, timeout=30, subscription_id=phone.id)
    assert first.json() == {
        "type": "badge", "unread": 1, "position": sent["position"],
        "message": {
            "message_id": mid, "sender_name": first.json()["message"]["sender_name"],
            "preview": "We found your parcel", "sent_at": sent["message"]["sent_at"],
        },
    }
    assert first.urgency == "high"

    status, read = http("POST", f"{stack.url}/api/v1/messages/{mid}/read", token=customer["token"])
    assert status == 200, read
    second = push.wait_for(2, timeout=30, subscription_id=phone.id)[1]
    assert second.json() == {"type": "badge", "unread": 0, "position": read["position"], "message": None}
    assert second.urgency == "low"
    assert second.topic == first.topic
