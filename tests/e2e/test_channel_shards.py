"""The channel layer sharded over two Redis servers, one of which dies and comes back.

Real processes: two Daphne and a ``runworkers`` (the pipeline in two
partitions), with ``PARLEY_CHANNEL_REDIS_URLS`` naming two redis-servers of
the test's own. Each server carries some of the layer's groups (the
partitions' publications and the ephemeral frames hash to one or the
other). Clients that follow the protocol get every acknowledged message
exactly once; when one server is killed, `/healthz` says so and the
messages still arrive (the partitions it carried are read from the log);
when it is back, `/healthz` is green again and publications flow through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RedisServer, Stack, http, start_stack, stop_stack
from tests.e2e.test_live_delivery_faults import Traffic, all_delivered, assert_exactly_once, clients_for
from tests.support.wsclient import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def two_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    servers = (RedisServer(tmp_path / "a"), RedisServer(tmp_path / "b"))
    for s in servers:
        s.dir.mkdir()
        s.start()
    yield servers
    for s in servers:
        if s.proc is not None and s.proc.poll() is None:
            s.kill()


@pytest.fixture
def sharded_stack(tmp_path: Path, two_redis: tuple[RedisServer, RedisServer]) -> Iterator[Stack]:
    a, b = two_redis
    stack, drop = start_stack(tmp_path / "stack", web=2, separate_workers=True, extra_env={
        "REDIS_URL": a.url, "PARLEY_CHANNEL_REDIS_URLS": f"{a.url} {b.url}", "PARLEY_PIPELINE_PARTITIONS": "2",
        "PARLEY_LEASE_SECONDS": "3"})
    yield stack
    stop_stack(stack)
    drop()


def subscriptions(server: RedisServer, prefix: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        return [c.decode() for c in client.pubsub_channels(f"{prefix}*")]
    finally:
        client.close()


def test_two_redis_servers_share_the_groups_and_one_dying_loses_nothing(
    sharded_stack: Stack, two_redis: tuple[RedisServer, RedisServer]
):
    stack = sharded_stack
    a, b = two_redis
    prefix = stack.env["PARLEY_CHANNEL_PREFIX"]
    customers = [stack.register_customer(f"Sharded {i}", f"s{i}@example.com") for i in range(6)]
    agent = stack.agent_token()
    traffic = Traffic(stack, agent, customers)
    clients = clients_for(stack, customers, agent)

    async def scenario() -> None:
        for c in clients.values():
            c.start()
        assert await wait_for(lambda: all(c.live.is_set() for c in clients.values()), 20), "clients never went live"
        # Both servers carry some of the layer's groups (the dispatchers subscribed to them).
        assert await wait_for(lambda: subscriptions(a, prefix) and subscriptions(b, prefix), 10), (
            subscriptions(a, prefix), subscriptions(b, prefix))
        await traffic.run(20, 0.05)
        await asyncio.to_thread(b.kill)
        status, health = await asyncio.to_thread(http, "GET", f"{stack.url}/healthz")
        assert status == 503 and health["channel_layer"].startswith("error"), health
        await traffic.run(20, 0.05)
        await asyncio.to_thread(b.start)
        assert await wait_for(lambda: http("GET", f"{stack.url}/healthz")[0] == 200, 20), "healthz stayed red"
        await traffic.run(20, 0.05)
        assert await all_delivered(clients, traffic, 30), "a client missed messages"
        await asyncio.sleep(1)  # anything twice would have arrived by now
        assert_exactly_once(clients, traffic)
        for c in clients.values():
            await c.stop()

    asyncio.run(scenario())
    assert not traffic.server_errors(), traffic.statuses
    assert len(traffic.acked) == 60
