"""The websocket protocol through Channels' WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from eventstore.models import StoredEvent
from project.asgi import application
from project.bootstrap import pipeline
from realtime.dispatcher import stop_dispatchers
from tests.conftest import new_id

pytestmark = pytest.mark.django_db(transaction=True)  # async tests: asyncio_mode = "auto" (pyproject.toml)


@pytest.fixture(autouse=True)
async def _dispatcher_of_this_loop():
    """Each test runs on a loop of its own, and so does its process's dispatcher."""
    yield
    try:
        await asyncio.wait_for(stop_dispatchers(), 5)
    except TimeoutError:
        for t in asyncio.all_tasks():
            t.print_stack()
        raise


async def pump() -> None:
    """Run the pipeline on this loop: read models, then the fan-out's publications."""
    await pipeline().catch_up_async()


async def connect(token: str) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, f"/ws/v1/?token={token}")
    connected, _ = await ws.connect()
    assert connected
    return ws


async def frames_until(ws: WebsocketCommunicator, kind: str, timeout: float = 3) -> list[dict]:
    got = []
    while True:
        frame = json.loads(await ws.receive_from(timeout=timeout))
        got.append(frame)
        if frame["type"] == kind:
            return got


async def count(event_type: str) -> int:
    return await sync_to_async(StoredEvent.objects.filter(event_type=event_type).count)()


async def test_an_unauthenticated_socket_gets_an_error_frame_and_a_clear_close_code():
    ws = WebsocketCommunicator(application, "/ws/v1/")
    connected, _ = await ws.connect()
    assert connected
    frame = json.loads(await ws.receive_from())
    assert frame["type"] == "error" and frame["code"] == "not_authenticated"
    assert (await ws.receive_output())["code"] == 4401


async def test_a_forged_token_is_refused(customer):
    ws = WebsocketCommunicator(application, "/ws/v1/?token=pc.forged:abc:def")
    await ws.connect()
    assert json.loads(await ws.receive_from())["code"] == "invalid_token"
    assert (await ws.receive_output())["code"] == 4401


async def test_a_customer_sends_over_the_socket_and_both_sides_see_it_live(customer, agent):
    await sync_to_async(lambda: None)()
    cws, aws = await connect(customer.token), await connect(agent.token)
    mid = new_id()
    await cws.send_json_to({"type": "message.send", "message_id": mid, "body": "hi from the socket"})
    ack = json.loads(await cws.receive_from())
    assert ack["type"] == "ack" and ack["ref"] == mid and ack["position"] > 0
    await pump()
    sent = [f for f in await frames_until(cws, "message.sent")]
    assert sent[-1]["message"]["message_id"] == mid
    assert sent[-1]["position"] == ack["position"]
    agent_frames = await frames_until(aws, "conversation.updated")
    kinds = [f["type"] for f in agent_frames]
    assert "message.sent" in kinds
    conv = agent_frames[-1]["conversation"]
    assert conv["customer_id"] == customer.id and conv["unread_for_agents"] == 1
    assert conv["customer_name"] == "Ada Lovelace"
    await cws.disconnect()
    await aws.disconnect()


async def test_an_agent_reply_raises_the_badge_on_every_device_and_a_read_on_one_clears_all(customer, agent):
    await pump()
    phone, laptop, aws = await connect(customer.token), await connect(customer.token), await connect(agent.token)
    mid = new_id()
    await aws.send_json_to({"type": "message.send", "customer_id": customer.id, "message_id": mid, "body": "answer"})
    assert json.loads(await aws.receive_from())["type"] == "ack"
    await pump()
    for device in (phone, laptop):
        badge = (await frames_until(device, "badge"))[-1]
        assert badge["unread"] == 1
    await phone.send_json_to({"type": "message.read", "message_id": mid})
    assert json.loads(await phone.receive_from())["type"] == "ack"
    await pump()
    for device in (phone, laptop):
        frames = await frames_until(device, "badge")
        assert frames[-1]["unread"] == 0
        assert any(f["type"] == "message.read" and f["message_id"] == mid for f in frames)
    for ws in (phone, laptop, aws):
        await ws.disconnect()


async def test_resume_replays_what_was_missed_in_order_then_continues_live_without_duplicates(customer, agent):
    await pump()
    ws = await connect(customer.token)
    first = new_id()
    await ws.send_json_to({"type": "message.send", "message_id": first, "body": "one"})
    seen = json.loads(await ws.receive_from())["position"]
    await pump()
    await frames_until(ws, "message.sent")
    await ws.disconnect()

    # Offline: the agent answers twice and edits; nothing reaches this client.
    ids = [new_id(), new_id()]
    for i in ids:
        await sync_to_async(agent.post)(f"/api/v1/conversations/{customer.id}/messages", {"message_id": i, "body": f"reply {i}"})
    await sync_to_async(agent.patch)(f"/api/v1/messages/{ids[0]}", {"body": "reply, edited"})
    await pump()

    ws = await connect(customer.token)
    await ws.send_json_to({"type": "resume", "after": seen})
    frames = await frames_until(ws, "resumed")
    kinds = [(f["type"], f.get("message", {}).get("message_id")) for f in frames]
    assert kinds == [
        ("message.sent", ids[0]), ("badge", None),
        ("message.sent", ids[1]), ("badge", None),
        ("message.edited", ids[0]),
        ("resumed", None),
    ]
    assert [f["unread"] for f in frames if f["type"] == "badge"] == [1, 2]
    positions = [f["position"] for f in frames if f["type"] != "resumed"]
    assert positions == sorted(positions) and positions[0] > seen
    # The fan-out catching up now must not repeat what the replay delivered...
    live = new_id()
    await sync_to_async(agent.post)(f"/api/v1/conversations/{customer.id}/messages", {"message_id": live, "body": "live"})
    await pump()
    after = await frames_until(ws, "badge")
    assert [f["type"] for f in after] == ["message.sent", "badge"]
    assert after[0]["message"]["message_id"] == live and after[1]["unread"] == 3
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_customer_resume_never_shows_another_customers_events(make_customer, agent):
    alice, bob = await sync_to_async(make_customer)("Alice"), await sync_to_async(make_customer)("Bob")
    await pump()
    await sync_to_async(agent.post)(f"/api/v1/conversations/{alice.id}/messages", {"message_id": new_id(), "body": "for alice"})
    await pump()
    ws = await connect(bob.token)
    await ws.send_json_to({"type": "resume", "after": 0})
    frames = await frames_until(ws, "resumed")
    assert [f["type"] for f in frames] == ["resumed"]
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "malformed_json"),
        ("[1]", "invalid_frame"),
        ('{"type": "bogus"}', "unknown_type"),
        ('{"type": "message.send", "body": "x"}', "missing_field"),
        ('{"type": "message.send", "message_id": "nope", "body": "x"}', "invalid_field"),
        ('{"type": "message.send", "message_id": "%s", "body": 3}' % uuid.uuid4(), "invalid_field"),
        ('{"type": "message.send", "message_id": "%s", "body": "  "}' % uuid.uuid4(), "invalid_body"),
        ('{"type": "message.read", "message_id": "%s"}' % uuid.uuid4(), "message_not_found"),
        ('{"type": "resume", "after": "x"}', "invalid_field"),
        ('{"type": "resume", "after": 99999999}', "unknown_position"),
        ('{"type": "message.send", "message_id": "%s", "body": "%s"}' % (uuid.uuid4(), "x" * 20000), "frame_too_large"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_stores_nothing_and_keeps_the_socket(customer, frame, code):
    ws = await connect(customer.token)
    await ws.send_to(text_data=frame)
    err = json.loads(await ws.receive_from())
    assert err["type"] == "error" and err["code"] == code and err["detail"]
    assert await count("MessageSent") == 0
    # Still connected and working.
    await ws.send_json_to({"type": "ping"})
    assert json.loads(await ws.receive_from())["type"] == "pong"
    await ws.disconnect()


async def test_someone_elses_message_is_not_found_over_the_socket(make_customer, agent):
    alice, bob = await sync_to_async(make_customer)("Alice"), await sync_to_async(make_customer)("Bob")
    await pump()
    mid = new_id()
    await sync_to_async(agent.post)(f"/api/v1/conversations/{alice.id}/messages", {"message_id": mid, "body": "private"})
    ws = await connect(bob.token)
    await ws.send_json_to({"type": "message.read", "message_id": mid})
    err = json.loads(await ws.receive_from())
    assert (err["type"], err["code"], err["ref"]) == ("error", "message_not_found", mid)
    await ws.send_json_to({"type": "message.edit", "message_id": mid, "body": "mine"})
    assert json.loads(await ws.receive_from())["code"] == "message_not_found"
    assert await count("MessageMarkedAsRead") == 0 and await count("MessageEdited") == 0
    await ws.disconnect()


async def test_typing_reaches_the_other_side_is_rate_limited_and_never_stored(customer, agent):
    cws, aws = await connect(customer.token), await connect(agent.token)
    before = await sync_to_async(StoredEvent.objects.count)()
    for _ in range(5):
        await cws.send_json_to({"type": "typing"})
    frame = json.loads(await aws.receive_from())
    assert frame == {"type": "typing", "customer_id": customer.id, "sender": {"kind": "customer", "id": customer.id, "name": ""}}
    assert await aws.receive_nothing(timeout=0.3)  # the other four were dropped
    await aws.send_json_to({"type": "typing", "customer_id": customer.id})
    frame = json.loads(await cws.receive_from())
    assert frame["sender"]["kind"] == "agent" and frame["sender"]["name"] == "Grace"
    assert await sync_to_async(StoredEvent.objects.count)() == before
    await cws.disconnect()
    await aws.disconnect()


async def test_agents_see_each_others_presence(make_agent):
    grace, linus = await sync_to_async(make_agent)("grace"), await sync_to_async(make_agent)("linus")
    g = await connect(grace.token)
    l_ws = await connect(linus.token)
    frame = json.loads(await g.receive_from())
    assert frame == {"type": "presence", "agent": {"id": linus.id, "name": "Linus"}, "status": "online"}
    # Grace answers Linus's arrival so that he learns she is online too.
    frame = json.loads(await l_ws.receive_from())
    assert frame["agent"]["id"] == grace.id and frame["status"] == "online"
    await l_ws.disconnect()
    # Presence is a status, not an event: a repeated "online" is harmless.
    frames = await frames_until(g, "presence")
    while frames[-1]["status"] == "online":
        frames += await frames_until(g, "presence")
    assert frames[-1] == {"type": "presence", "agent": {"id": linus.id, "name": "Linus"}, "status": "offline"}
    await g.disconnect()


async def test_a_resume_while_projections_lag_replays_nothing_stale_and_the_live_frames_follow(customer, agent):
    await pump()
    ws = await connect(customer.token)
    mid = new_id()
    await sync_to_async(agent.post)(f"/api/v1/conversations/{customer.id}/messages", {"message_id": mid, "body": "fresh"})
    # Nothing has projected the new message yet: the replay must not invent its badge.
    await ws.send_json_to({"type": "resume", "after": 0})
    frames = await frames_until(ws, "resumed")
    assert [f["type"] for f in frames] == ["resumed"]
    await pump()
    live = await frames_until(ws, "badge")
    assert [f["type"] for f in live] == ["message.sent", "badge"]
    assert live[0]["message"]["message_id"] == mid and live[1]["unread"] == 1
    await ws.disconnect()


async def test_resumes_are_rate_limited_per_party(customer):
    ws = await connect(customer.token)
    codes = []
    for _ in range(31):
        await ws.send_json_to({"type": "resume", "after": 0})
        codes.append(json.loads(await ws.receive_from())["type"])
    assert codes[:30] == ["resumed"] * 30
    assert codes[30] == "error"
    await ws.disconnect()


async def _session_cookie(username: str) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    def login() -> str:
        c = Client()
        c.force_login(get_user_model().objects.get(username=username))
        return c.cookies["sessionid"].value

    return await sync_to_async(login)()


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [("http://parley.example:8000", True), ("http://evil.example", False), ("http://parley.example:9999", False), (None, False)],
)
async def test_a_cookie_session_socket_must_come_from_our_own_origin(agent, origin, accepted):
    sessionid = await _session_cookie("grace")
    headers = [(b"cookie", f"sessionid={sessionid}".encode()), (b"host", b"parley.example:8000")]
    if origin:
        headers.append((b"origin", origin.encode()))
    ws = WebsocketCommunicator(application, "/ws/v1/", headers=headers)
    await ws.connect()
    if accepted:
        await ws.send_json_to({"type": "ping"})
        assert json.loads(await ws.receive_from())["type"] in ("pong", "presence")
    else:
        assert json.loads(await ws.receive_from())["code"] == "forbidden_origin"
        assert (await ws.receive_output())["code"] == 4403
    await ws.disconnect()


async def test_a_resync_is_answered_with_resume_and_nothing_is_missed_or_repeated(customer, agent):
    from realtime.dispatcher import get_dispatcher

    await pump()
    ws = await connect(customer.token)
    await ws.send_json_to({"type": "resume", "after": 0})
    await frames_until(ws, "resumed")
    first = new_id()
    await sync_to_async(agent.post)(f"/api/v1/conversations/{customer.id}/messages", {"message_id": first, "body": "one"})
    await pump()
    last = (await frames_until(ws, "badge"))[-1]["position"]

    # The server loses track of what this socket was sent: it says so, and holds live frames.
    await get_dispatcher().resync_everyone()
    assert json.loads(await ws.receive_from()) == {"type": "resync"}
    second = new_id()
    await sync_to_async(agent.post)(f"/api/v1/conversations/{customer.id}/messages", {"message_id": second, "body": "two"})
    await pump()
    assert await ws.receive_nothing(timeout=0.3)  # held until the client resumes

    await ws.send_json_to({"type": "resume", "after": last})
    frames = await frames_until(ws, "resumed")
    sent = [f["message"]["message_id"] for f in frames if f["type"] == "message.sent"]
    assert sent == [second]
    assert [f["unread"] for f in frames if f["type"] == "badge"] == [2]
    assert await ws.receive_nothing(timeout=0.3)  # and nothing twice afterwards
    await ws.disconnect()


async def test_a_socket_that_does_not_answer_resync_is_closed_with_4000(customer, monkeypatch):
    from realtime import consumers
    from realtime.dispatcher import get_dispatcher

    monkeypatch.setattr(consumers, "RESYNC_ANSWER_WITHIN", 0.3)
    ws = await connect(customer.token)
    await ws.send_json_to({"type": "resume", "after": 0})
    await frames_until(ws, "resumed")
    await get_dispatcher().resync_everyone()
    assert json.loads(await ws.receive_from()) == {"type": "resync"}
    assert (await ws.receive_output(timeout=2))["code"] == 4000


async def test_binary_frames_get_an_error_frame_and_nothing_is_stored(customer):
    ws = await connect(customer.token)
    await ws.send_to(bytes_data=b'{"type": "message.send", "message_id": "x", "body": "\\xff"}')
    err = json.loads(await ws.receive_from())
    assert err["type"] == "error" and err["code"] == "binary_frame"
    assert await count("MessageSent") == 0
    await ws.disconnect()


async def test_an_agent_writing_to_an_unknown_customer_gets_an_error_frame(agent):
    ws = await connect(agent.token)
    mid = new_id()
    await ws.send_json_to({"type": "message.send", "customer_id": new_id(), "message_id": mid, "body": "hello?"})
    frames = await frames_until(ws, "error")
    assert (frames[-1]["code"], frames[-1]["ref"]) == ("customer_not_found", mid)
    assert await count("MessageSent") == 0
    await ws.disconnect()


async def test_a_message_id_someone_else_used_is_a_conflict_over_the_socket_too(make_customer, make_agent):
    alice, bob = await sync_to_async(make_customer)("Alice"), await sync_to_async(make_customer)("Bob")
    grace = await sync_to_async(make_agent)("grace")
    await pump()
    hers = new_id()
    r = await sync_to_async(alice.post)("/api/v1/messages", {"message_id": hers, "body": "my secret order 1043"})
    assert r.status_code == 201
    before = await sync_to_async(StoredEvent.objects.count)()

    bws, gws = await connect(bob.token), await connect(grace.token)
    attempts = [
        (bws, {"type": "message.send", "message_id": hers, "body": "my secret order 1043"}),
        (bws, {"type": "message.send", "message_id": hers, "body": "something else"}),
        (gws, {"type": "message.send", "customer_id": bob.id, "message_id": hers, "body": "my secret order 1043"}),
        (gws, {"type": "message.send", "customer_id": alice.id, "message_id": hers, "body": "my secret order 1043"}),
    ]
    for ws, frame in attempts:
        await ws.send_json_to(frame)
        err = json.loads(await ws.receive_from())
        assert (err["type"], err["code"], err["ref"]) == ("error", "message_id_conflict", hers), err
        for secret in ("secret", "1043", "Alice", alice.id):
            assert secret not in json.dumps(err)
    assert await sync_to_async(StoredEvent.objects.count)() == before
    for ws in (bws, gws):
        await ws.disconnect()


def test_events_of_one_conversation_in_one_batch_send_one_conversation_update(customer, agent, project):
    """The rows frames carry are as of the batch's end: one conversation.updated, on its last event."""
    from eventstore.events import Cursor
    from eventstore.store import EventStore
    from realtime.frames import envelopes

    for body in ("one", "two", "three"):
        assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": body}).status_code == 201
    project()
    batch = EventStore().read_all(Cursor.start())
    built = envelopes(batch)
    updates = [(env.cursor, json.loads(f)) for env in built for f in env.to_agents
               if json.loads(f)["type"] == "conversation.updated"]
    assert len(updates) == 1
    [(cursor, frame)] = updates
    assert cursor == built[-1].cursor and frame["position"] == built[-1].cursor.position
    assert frame["conversation"]["last_message"]["preview"] == "three"
    sent = [json.loads(f)["message"]["body"] for env in built for f in env.to_agents if json.loads(f)["type"] == "message.sent"]
    assert sent == ["one", "two", "three"]  # every message still goes out


async def test_an_identity_past_its_socket_cap_is_refused_with_4429_and_others_are_not(make_customer, settings):
    settings.PARLEY_SOCKETS_PER_IDENTITY = 2
    ada = await sync_to_async(make_customer)(name="Ada")
    bob = await sync_to_async(make_customer)(name="Bob", email="bob@example.com")
    first, second = await connect(ada.token), await connect(ada.token)
    third = WebsocketCommunicator(application, f"/ws/v1/?token={ada.token}")
    await third.connect()
    refused = json.loads(await third.receive_from())
    assert (refused["type"], refused["code"]) == ("error", "too_many_sockets")
    assert (await third.receive_output())["code"] == 4429
    other = await connect(bob.token)  # another identity is not counted with Ada's
    await first.disconnect()
    again = await connect(ada.token)  # a closed socket frees its place
    await second.send_json_to({"type": "resume", "after": 0})
    assert (await frames_until(second, "resumed"))[-1]["type"] == "resumed"
    for ws in (second, other, again):
        await ws.disconnect()


# -- erasure (docs/privacy.md): the customer's sockets close with 4410, for good -----------------


async def erase(agent, customer_id: str) -> None:
    r = await sync_to_async(agent.post)(f"/api/v1/customers/{customer_id}/erase")
    assert r.status_code == 202 and r.json()["erased"] is True


async def resumed(ws: WebsocketCommunicator) -> list[dict]:
    await ws.send_json_to({"type": "resume", "after": 0})
    return await frames_until(ws, "resumed")


async def assert_refused_as_erased(ws: WebsocketCommunicator) -> None:
    connected, _ = await ws.connect()
    assert connected  # accepted, so that the reason can be read
    refused = json.loads(await ws.receive_from())
    assert (refused["type"], refused["code"]) == ("error", "erased")
    assert (await ws.receive_output())["code"] == 4410


def chat_page_socket(token: str) -> WebsocketCommunicator:
    """A socket as the chat page opens it: with the page's cookie, from our own origin."""
    from accounts.principals import CUSTOMER_COOKIE, customer_cookie_value

    headers = [(b"cookie", f"{CUSTOMER_COOKIE}={customer_cookie_value(token)}".encode()),
               (b"host", b"parley.example:8000"), (b"origin", b"http://parley.example:8000")]
    return WebsocketCommunicator(application, "/ws/v1/", headers=headers)


async def test_erasure_closes_each_socket_of_the_customer_with_4410_after_the_frame_and_no_one_elses(make_customer, agent):
    from realtime.dispatcher import get_dispatcher

    ada = await sync_to_async(make_customer)(name="Ada")
    bob = await sync_to_async(make_customer)(name="Bob", email="bob@example.com")
    await sync_to_async(agent.post)(f"/api/v1/conversations/{ada.id}/messages", {"message_id": new_id(), "body": "hello Ada"})
    await pump()
    page = chat_page_socket(ada.token)  # the chat page (cookie)
    assert (await page.connect())[0]
    widget = await connect(ada.token)  # the website widget's frame (?token=)
    other, desk = await connect(bob.token), await connect(agent.token)
    for ws in (page, widget, other, desk):
        await resumed(ws)
    sent_before = await count("MessageSent")

    await erase(agent, ada.id)
    await pump()
    for ws in (page, widget):
        frames = await frames_until(ws, "customer.erased")
        assert frames[-1]["customer_id"] == ada.id
        # The frame, then the close: nothing in between, nothing after.
        assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": 4410}
        # Whatever it still sends is not acted on.
        await ws.send_json_to({"type": "message.send", "message_id": new_id(), "body": "still here?"})
        assert await ws.receive_nothing(timeout=0.3)
    assert await count("MessageSent") == sent_before
    assert f"customer.{ada.id}" not in get_dispatcher().audiences  # unregistered in this process

    # The agent hears of the erasure and stays connected.
    assert (await frames_until(desk, "customer.erased"))[-1]["customer_id"] == ada.id
    await desk.send_json_to({"type": "ping"})
    assert (await frames_until(desk, "pong"))[-1] == {"type": "pong"}

    # Another customer's socket stays open and still gets its frames.
    mid = new_id()
    await sync_to_async(agent.post)(f"/api/v1/conversations/{bob.id}/messages", {"message_id": mid, "body": "hello Bob"})
    await pump()
    frames = await frames_until(other, "message.sent")
    assert frames[-1]["message"]["message_id"] == mid
    assert "customer.erased" not in [f["type"] for f in frames]

    # Reconnecting with the old token or cookie is refused with the same code.
    await assert_refused_as_erased(WebsocketCommunicator(application, f"/ws/v1/?token={ada.token}"))
    await assert_refused_as_erased(chat_page_socket(ada.token))
    for ws in (page, widget, other, desk):
        await ws.disconnect()


async def test_a_resume_that_replays_the_erasure_closes_the_socket_with_4410_after_the_frame(customer, agent, monkeypatch):
    from realtime import consumers

    monkeypatch.setattr(consumers, "RESUME_GRACE", 30.0)  # live frames wait for the client's resume
    await sync_to_async(agent.post)(f"/api/v1/conversations/{customer.id}/messages", {"message_id": new_id(), "body": "hi"})
    await pump()
    ws = await connect(customer.token)  # connected before the erasure, resuming after it
    await erase(agent, customer.id)
    await pump()
    await ws.send_json_to({"type": "resume", "after": 0})
    # Their events read back as erased: the replay has nothing of them but the erasure.
    frames = await frames_until(ws, "customer.erased")
    assert [f["type"] for f in frames] == ["customer.erased"]
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": 4410}
    assert await ws.receive_nothing(timeout=0.3)  # neither the held live frame nor `resumed` after the close
    await ws.disconnect()


async def test_a_process_still_remembering_an_erased_customer_refuses_their_new_socket_all_the_same(customer, agent, monkeypatch):
    from chat.ports import customer_directory

    desk = await connect(agent.token)  # this process's dispatcher runs, and hands the erasure on
    await resumed(desk)
    await erase(agent, customer.id)
    await pump()
    await frames_until(desk, "customer.erased")
    # As in a process that saw the customer a moment before the erasure (it remembers them for seconds).
    monkeypatch.setattr(customer_directory(), "is_known", lambda customer_id: True)
    await assert_refused_as_erased(WebsocketCommunicator(application, f"/ws/v1/?token={customer.token}"))
    await desk.disconnect()
