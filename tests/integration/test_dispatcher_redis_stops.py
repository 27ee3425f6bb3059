"""When Redis stops, a dispatcher reads the log at once, not after its silence timeout.

A redis-server of the test's own (never the shared one), under each channel
layer Parley runs: the pub/sub layer (the default), whose receive never
raises (its own task reconnects, and messages simply stop), and the core
layer, whose receive raises while Redis is down. The silence timeout is
set far beyond the test, so only noticing the outage itself can bring the
frame: docs/protocol.md promises frames at most about half a second late
when Redis stops.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from project.bootstrap import pipeline
from realtime import dispatcher as dispatching
from realtime.dispatcher import Dispatcher, publish
from tests.e2e.conftest import RedisServer
from tests.integration.test_partitions import Socket

pytestmark = pytest.mark.django_db(transaction=True)

LAYERS = {
    "pubsub": lambda url: {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                           "CONFIG": {"hosts": [url], "prefix": "parley-test"}},
    "core": lambda url: {"BACKEND": "channels_redis.core.RedisChannelLayer",
                         "CONFIG": {"hosts": [{"address": url, "socket_timeout": None}], "prefix": "parley-test"}},
}


async def until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("layer", list(LAYERS))
async def test_when_redis_stops_the_dispatcher_reads_the_log_at_once(
    layer: str, customer: Any, settings: Any, monkeypatch: Any, tmp_path: Path,
):
    monkeypatch.setattr(dispatching, "SILENCE", 3600.0)  # silence alone would not switch it within the test
    redis = RedisServer(tmp_path)
    redis.start()
    settings.CHANNEL_LAYERS = {"default": LAYERS[layer](redis.url)}
    dispatcher, socket = Dispatcher(), Socket()
    try:
        start = await dispatcher.register(socket)
        # Publications come through this Redis: a heartbeat is heard.
        beat = {"type": "parley.beat", "partition": (0, 1), "end": [start.tx, start.position]}
        for _ in range(400):  # until the dispatcher's subscription is up
            if dispatcher.stats.beats:
                break
            await publish(beat)
            await asyncio.sleep(0.05)
        assert dispatcher.stats.beats > 0, "no heartbeat came through Redis"
        assert dispatcher.following

        redis.kill()
        actor = Actor(SenderKind.CUSTOMER, customer.id, "")
        await sync_to_async(send_message)(SendMessage(uuid.uuid4(), uuid.UUID(customer.id), actor, "while Redis is down"))
        await pipeline().catch_up_async()  # commits; its publication is lost with Redis

        await until(lambda: bool(socket.got), "the frame, read from the log while Redis is down")
        assert not dispatcher.following
        assert dispatcher.stats.fills > 0 and dispatcher.stats.batches == 0
    finally:
        await dispatcher.stop()
        redis.kill()
