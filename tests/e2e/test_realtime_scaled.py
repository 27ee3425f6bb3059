"""Two Daphne processes and a worker process on Redis behave as one server.

A real websocket client library (websockets) talks to real processes: a
customer on one Daphne, an agent on the other.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets

from tests.e2e.conftest import Stack, http

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]


async def next_of(ws: Any, kind: str, timeout: float = 15, message_id: str | None = None) -> dict[str, Any]:
    """The next frame of ``kind`` (about ``message_id``), skipping others."""
    async def wait() -> dict[str, Any]:
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind and (message_id is None or frame.get("message", {}).get("message_id") == message_id):
                return frame

    return await asyncio.wait_for(wait(), timeout)


async def collect_until(ws: Any, kind: str, timeout: float = 15) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []

    async def wait() -> list[dict[str, Any]]:
        while True:
            frames.append(json.loads(await ws.recv()))
            if frames[-1]["type"] == kind:
                return frames

    return await asyncio.wait_for(wait(), timeout)


def test_a_customer_and_an_agent_on_different_processes_talk_live(scaled_stack: Stack):
    customer = scaled_stack.register_customer("Carla Customer")
    agent = scaled_stack.agent_token()

    async def scenario() -> None:
        async with websockets.connect(scaled_stack.ws_url(customer["token"], 0)) as cws, websockets.connect(
            scaled_stack.ws_url(agent, 1)
        ) as aws:
            mid = str(uuid.uuid4())
            await cws.send(json.dumps({"type": "message.send", "message_id": mid, "body": "hello from process 0"}))
            ack = await next_of(cws, "ack")
            seen = await next_of(aws, "message.sent")
            assert seen["message"]["message_id"] == mid and seen["position"] == ack["position"]
            assert seen["message"]["sender"]["name"] == "Carla Customer"

            reply = str(uuid.uuid4())
            await aws.send(json.dumps({"type": "message.send", "customer_id": customer["customer_id"], "message_id": reply, "body": "hi from process 1"}))
            await next_of(aws, "ack")
            got = await next_of(cws, "message.sent", message_id=reply)
            assert got["message"]["body"] == "hi from process 1"
            assert (await next_of(cws, "badge"))["unread"] == 1

    asyncio.run(scenario())


def test_every_device_of_a_customer_follows_the_badge_across_processes(scaled_stack: Stack):
    customer = scaled_stack.register_customer("Multi Device")
    agent = scaled_stack.agent_token()

    async def scenario() -> None:
        async with websockets.connect(scaled_stack.ws_url(customer["token"], 0)) as phone, websockets.connect(
            scaled_stack.ws_url(customer["token"], 1)
        ) as laptop:
            ids = [str(uuid.uuid4()) for _ in range(2)]
            for i in ids:
                status, _ = http("POST", f"{scaled_stack.url}/api/v1/conversations/{customer['customer_id']}/messages", {"message_id": i, "body": "news"}, token=agent)
                assert status == 201
            for device in (phone, laptop):
                assert (await next_of(device, "badge"))["unread"] == 1
                assert (await next_of(device, "badge"))["unread"] == 2
            await phone.send(json.dumps({"type": "message.read", "message_id": ids[0]}))
            for device in (phone, laptop):
                badge = await next_of(device, "badge")
                assert badge["unread"] == 1
            status, body = http("GET", f"{scaled_stack.urls[1]}/api/v1/badge?min_position={badge['position']}", token=customer["token"])
            assert status == 200 and body == {"unread": 1, "position": badge["position"]}

    asyncio.run(scenario())


def test_a_customer_who_reconnects_gets_everything_sent_while_away_exactly_once(scaled_stack: Stack):
    customer = scaled_stack.register_customer("Away For A Bit")
    agent = scaled_stack.agent_token()

    async def scenario() -> None:
        async with websockets.connect(scaled_stack.ws_url(customer["token"], 0)) as ws:
            first = str(uuid.uuid4())
            await ws.send(json.dumps({"type": "message.send", "message_id": first, "body": "are you there?"}))
            last_seen = (await next_of(ws, "ack"))["position"]
        # Disconnected: the agent answers three times through the other process.
        missed = [str(uuid.uuid4()) for _ in range(3)]
        for i, mid in enumerate(missed):
            status, _ = http("POST", f"{scaled_stack.urls[1]}/api/v1/conversations/{customer['customer_id']}/messages", {"message_id": mid, "body": f"answer {i}"}, token=agent)
            assert status == 201
        async with websockets.connect(scaled_stack.ws_url(customer["token"], 1)) as ws:
            await ws.send(json.dumps({"type": "resume", "after": last_seen}))
            # The replay brings what the fan-out has published; the rest follows live.
            got: list[str] = []
            while len(got) < len(missed):
                got.append((await next_of(ws, "message.sent"))["message"]["message_id"])
            assert got == missed
            live = str(uuid.uuid4())
            status, _ = http("POST", f"{scaled_stack.url}/api/v1/conversations/{customer['customer_id']}/messages", {"message_id": live, "body": "live"}, token=agent)
            assert status == 201
            # Exactly once: the next message.sent is the live one, not a repeat.
            frame = await next_of(ws, "message.sent")
            assert frame["message"]["message_id"] == live
            badge = await next_of(ws, "badge")
            while badge["position"] < frame["position"]:
                badge = await next_of(ws, "badge")
            assert badge["unread"] == 4

    asyncio.run(scenario())


async def closed_with(ws: Any, timeout: float = 15) -> int | None:
    """The close code, once the server closed the socket (after whatever frames were still to come)."""
    async def wait() -> int | None:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            return ws.close_code

    return await asyncio.wait_for(wait(), timeout)


def test_erasing_a_customer_closes_their_sockets_on_every_process_and_refuses_new_ones(scaled_stack: Stack):
    ada = scaled_stack.register_customer("Ada Erased", "erased@example.com")
    bob = scaled_stack.register_customer("Bob Stays", "stays@example.com")
    agent = scaled_stack.agent_token()

    async def scenario() -> None:
        async with websockets.connect(scaled_stack.ws_url(ada["token"], 0)) as first, websockets.connect(
            scaled_stack.ws_url(ada["token"], 1)
        ) as second, websockets.connect(scaled_stack.ws_url(bob["token"], 1)) as other:
            for ws in (first, second, other):
                await ws.send(json.dumps({"type": "resume", "after": 0}))
                await next_of(ws, "resumed")
            status, body = http("POST", f"{scaled_stack.url}/api/v1/customers/{ada['customer_id']}/erase", token=agent)
            assert status == 202 and body["erased"] is True
            # Each process closes its own socket of hers, right after the frame.
            for ws in (first, second):
                assert (await next_of(ws, "customer.erased"))["customer_id"] == ada["customer_id"]
                assert await closed_with(ws) == 4410
            # Bob's socket on the same process as one of hers stays, and live.
            mid = str(uuid.uuid4())
            status, _ = http("POST", f"{scaled_stack.urls[0]}/api/v1/conversations/{bob['customer_id']}/messages",
                             {"message_id": mid, "body": "still here for you"}, token=agent)
            assert status == 201
            assert (await next_of(other, "message.sent", message_id=mid))["message"]["body"] == "still here for you"
        # Her token is refused on either process, at once (process 1 may still remember her: it saw her seconds ago).
        for index in (0, 1):
            async with websockets.connect(scaled_stack.ws_url(ada["token"], index)) as again:
                refused = json.loads(await asyncio.wait_for(again.recv(), 15))
                assert (refused["type"], refused["code"]) == ("error", "erased")
                assert await closed_with(again) == 4410

    asyncio.run(scenario())
