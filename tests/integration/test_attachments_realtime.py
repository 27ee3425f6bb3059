"""Attachments over the websocket: sent with message.send, shown live and after a resume."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import new_id
from tests.integration.test_websocket import _dispatcher_of_this_loop, connect, frames_until, pump  # noqa: F401
from tests.support import files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def upload(caller, name: str, data: bytes) -> str:
    r = caller.client.post("/api/v1/attachments", {"file": SimpleUploadedFile(name, data)},
                           HTTP_AUTHORIZATION=f"Bearer {caller.token}")
    assert r.status_code == 201, r.content
    return r.json()["attachment_id"]


async def test_a_message_of_attachments_alone_sent_over_the_socket_reaches_agents_live_and_on_resume(customer, agent):
    await pump()
    photo = await sync_to_async(upload)(customer, "photo.png", files.png())
    pdf = await sync_to_async(upload)(customer, "invoice.pdf", files.PDF)
    agent_ws = await connect(agent.token)
    await agent_ws.send_json_to({"type": "resume", "after": 0})
    await frames_until(agent_ws, "resumed")
    ws = await connect(customer.token)
    mid = new_id()
    await ws.send_json_to({"type": "message.send", "message_id": mid, "attachments": [photo, pdf]})
    ack = json.loads(await ws.receive_from())
    assert ack["type"] == "ack" and ack["ref"] == mid
    await pump()

    live = None
    while live is None:
        frame = (await frames_until(agent_ws, "message.sent"))[-1]
        live = frame["message"] if frame["message"]["message_id"] == mid else None
    assert live["body"] == ""
    assert [(a["attachment_id"], a["name"], a["thumbnail_url"] is not None) for a in live["attachments"]] == [
        (photo, "photo.png", True), (pdf, "invoice.pdf", False)]
    await agent_ws.disconnect()

    again = await connect(agent.token)
    await again.send_json_to({"type": "resume", "after": 0})
    # (An agent's view is every conversation: other tests' may be in the log too.)
    resumed = [f for f in await frames_until(again, "resumed")
               if f["type"] == "message.sent" and f["message"]["customer_id"] == customer.id]
    assert [f["message"] for f in resumed] == [live]
    await again.disconnect()

    # The same attachment again, in another message: an error frame, nothing stored.
    await ws.send_json_to({"type": "message.send", "message_id": new_id(), "body": "again", "attachments": [photo]})
    assert (await frames_until(ws, "error"))[-1]["code"] == "attachment_already_sent"
    await ws.send_json_to({"type": "message.send", "message_id": new_id(), "body": "x", "attachments": "nope"})
    assert (await frames_until(ws, "error"))[-1]["code"] == "invalid_field"
    await ws.disconnect()
