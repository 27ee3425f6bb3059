"""The websocket's metrics follow what a real socket was sent, through Channels' communicator."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from realtime.dispatcher import get_dispatcher
from tests.conftest import new_id
from tests.integration.test_websocket import _dispatcher_of_this_loop, connect, frames_until, pump  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def frames(source: str) -> float:
    return sample("parley_websocket_frames_sent_total", source=source)


async def test_open_sockets_frames_by_source_commands_and_resyncs_are_counted(customer, agent):
    open_before = sample("parley_websocket_connections", audience="customer")
    ws = await connect(customer.token)
    assert sample("parley_websocket_connections", audience="customer") == open_before + 1

    replies = frames("reply")
    await ws.send_json_to({"type": "resume", "after": 0})
    await frames_until(ws, "resumed")
    await ws.send_json_to({"type": "ping"})
    await frames_until(ws, "pong")
    assert frames("reply") == replies + 2

    sends = sample("parley_command_duration_seconds_count", command="SendMessage", adapter="websocket")
    await ws.send_json_to({"type": "message.send", "message_id": new_id(), "body": "over the socket"})
    assert json.loads(await ws.receive_from())["type"] == "ack"
    assert sample("parley_command_duration_seconds_count", command="SendMessage", adapter="websocket") == sends + 1

    # The log's frames of that message: as many counted live as the socket got.
    live = frames("live")
    await pump()
    got = await frames_until(ws, "message.sent")
    assert await ws.receive_nothing(timeout=0.3)
    assert len(got) >= 1
    assert frames("live") == live + len(got)

    resyncs = sample("parley_websocket_resyncs_total")
    await get_dispatcher().resync_everyone()
    assert json.loads(await ws.receive_from()) == {"type": "resync"}
    assert sample("parley_websocket_resyncs_total") == resyncs + 1

    await ws.disconnect()
    assert sample("parley_websocket_connections", audience="customer") == open_before


async def test_a_refused_socket_is_never_counted_open(customer):
    from channels.testing import WebsocketCommunicator

    from project.asgi import application

    open_before = sample("parley_websocket_connections", audience="customer")
    ws = WebsocketCommunicator(application, "/ws/v1/?token=pc.forged:abc:def")
    await ws.connect()
    assert json.loads(await ws.receive_from())["code"] == "invalid_token"
    assert sample("parley_websocket_connections", audience="customer") == open_before
    await ws.disconnect()
    assert sample("parley_websocket_connections", audience="customer") == open_before


async def test_typing_reaches_the_other_side_as_an_ephemeral_frame(customer, agent):
    aws = await connect(agent.token)
    cws = await connect(customer.token)
    for ws in (aws, cws):
        await ws.send_json_to({"type": "resume", "after": 0})
        await frames_until(ws, "resumed")
    ephemeral = frames("ephemeral")
    await cws.send_json_to({"type": "typing"})
    await frames_until(aws, "typing")
    assert frames("ephemeral") == ephemeral + 1
    await aws.disconnect()
    await cws.disconnect()
