"""Every acknowledged message reaches every open client exactly once, without a reload.

Real processes: two Daphne and a ``runworkers`` on a redis-server of the
test's own, clients that follow docs/protocol.md to the letter
(tests/support/wsclient.py), an agent writing over HTTP all the while. The
faults are real too: Redis killed and restarted, Redis frozen, the workers
and a web process killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RedisServer, Stack, http, start_stack, stop_stack
from tests.support.wsclient import ProtocolClient, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def faulty_stack(tmp_path: Path, own_redis: RedisServer) -> Iterator[Stack]:
    """Two Daphne and runworkers on the test's own Redis; leases short, so a
    killed worker's successor takes over quickly."""
    stack, drop = start_stack(
        tmp_path / "stack", web=2, separate_workers=True,
        extra_env={"REDIS_URL": own_redis.url, "PARLEY_LEASE_SECONDS": "3"},
    )
    yield stack
    stop_stack(stack)
    drop()


@dataclass
class Traffic:
    """An agent writing to customers over HTTP; what was acknowledged, and every answer seen."""

    stack: Stack
    token: str
    customers: list[dict[str, str]]
    acked: dict[str, str] = field(default_factory=dict)  # message id -> customer id
    statuses: list[int] = field(default_factory=list)

    def send(self, i: int, url: str | None = None) -> None:
        customer = self.customers[i % len(self.customers)]
        mid = str(uuid.uuid4())
        base = url or self.stack.urls[i % len(self.stack.urls)]
        try:
            status, _ = http("POST", f"{base}/api/v1/conversations/{customer['customer_id']}/messages",
                             {"message_id": mid, "body": f"reply {i}"}, token=self.token)
        except OSError:
            return  # a killed web process: no answer, so nothing acknowledged
        self.statuses.append(status)
        if status == 201:
            self.acked[mid] = customer["customer_id"]

    async def run(self, count: int, every: float, **kw: Any) -> None:
        for i in range(count):
            await asyncio.to_thread(self.send, i, **kw)
            await asyncio.sleep(every)

    def for_customer(self, customer_id: str) -> set[str]:
        return {m for m, c in self.acked.items() if c == customer_id}

    def server_errors(self) -> list[int]:
        return [s for s in self.statuses if s >= 500]


def clients_for(stack: Stack, customers: list[dict[str, str]], agent_token: str) -> dict[str, ProtocolClient]:
    """A customer client on each process, and an agent on each, each able to fail over to the other."""
    n = len(stack.urls)
    out = {}
    for i, c in enumerate(customers):
        urls = [stack.ws_url(c["token"], (i + k) % n) for k in range(n)]
        out[c["customer_id"]] = ProtocolClient(urls, name=f"customer{i}")
    for k in range(n):
        out[f"agent{k}"] = ProtocolClient([stack.ws_url(agent_token, (k + j) % n) for j in range(n)], name=f"agent{k}")
    return out


def assert_exactly_once(clients: dict[str, ProtocolClient], traffic: Traffic) -> None:
    for key, client in clients.items():
        wanted = set(traffic.acked) if key.startswith("agent") else traffic.for_customer(key)
        missing = wanted - set(client.sent_ids)
        assert not missing, f"{client.name} never got {len(missing)} acknowledged messages"
        assert not client.duplicates(), f"{client.name} got messages twice: {client.duplicates()}"


async def all_delivered(clients: dict[str, ProtocolClient], traffic: Traffic, timeout: float) -> bool:
    def done() -> bool:
        return all(
            c.got(set(traffic.acked) if key.startswith("agent") else traffic.for_customer(key)) for key, c in clients.items()
        )

    return await wait_for(done, timeout)


def health(url: str) -> tuple[int, dict[str, Any]]:
    return http("GET", f"{url}/healthz")


def test_a_redis_outage_loses_nothing_on_open_sockets_and_answers_no_5xx(faulty_stack: Stack, own_redis: RedisServer):
    stack = faulty_stack
    customers = [stack.register_customer(f"Outage {i}") for i in range(2)]
    agent = stack.agent_token()

    async def scenario() -> None:
        clients = clients_for(stack, customers, agent)
        for c in clients.values():
            c.start()
        assert await wait_for(lambda: all(c.live.is_set() for c in clients.values()), 15)
        traffic = Traffic(stack, agent, customers)
        sending = asyncio.create_task(traffic.run(160, 0.12))
        await asyncio.sleep(3)

        own_redis.kill()
        down_at = time.monotonic()
        await asyncio.sleep(2)
        # While Redis is down: logins, the health check and new sockets answer, none with a 5xx.
        status, body = await asyncio.to_thread(
            http, "POST", f"{stack.urls[0]}/api/v1/auth/agent", {"username": "agent", "password": stack.agent_password}
        )
        assert status == 201, body
        status, body = await asyncio.to_thread(health, stack.urls[1])
        assert status == 503 and body["channel_layer"].startswith("error")
        late = ProtocolClient([stack.ws_url(customers[0]["token"], 1)], name="opened-during-outage")
        late.start()
        assert await wait_for(late.live.is_set, 10), "a socket opened while Redis was down never went live"
        # Messages keep arriving while Redis is down (read from the log).
        during = len(traffic.acked)
        assert await wait_for(lambda: len(clients["agent0"].sent_ids) >= during, 5)
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_at)))

        own_redis.start()
        await sending
        assert await all_delivered(clients, traffic, timeout=10), "not every acknowledged message arrived within 10 s"
        await asyncio.sleep(1)  # anything twice would have arrived by now
        assert_exactly_once(clients, traffic)
        assert traffic.for_customer(customers[0]["customer_id"]) <= set(late.sent_ids)
        assert not late.duplicates()
        assert len(traffic.acked) >= 150
        assert not traffic.server_errors()
        # Nobody had to reconnect: the open sockets were served throughout.
        assert all(c.reconnects == 0 for c in clients.values()), {c.name: c.closes for c in clients.values()}
        for c in [*clients.values(), late]:
            await c.stop()

    asyncio.run(scenario())
    log = stack.dump_logs()
    assert "Traceback" not in log.split("--- workers.log")[0], "a web process logged an error"


def test_workers_killed_mid_traffic_even_between_commit_and_publish_lose_nothing(faulty_stack: Stack, own_redis: RedisServer):
    """kill -9 of runworkers, four times; twice while Redis is frozen, so the
    batch it just committed is never published (the commit/send window)."""
    stack = faulty_stack
    customers = [stack.register_customer(f"Crash {i}") for i in range(2)]
    agent = stack.agent_token()

    async def scenario() -> None:
        clients = clients_for(stack, customers, agent)
        for c in clients.values():
            c.start()
        assert await wait_for(lambda: all(c.live.is_set() for c in clients.values()), 15)
        traffic = Traffic(stack, agent, customers)
        sending = asyncio.create_task(traffic.run(200, 0.05))
        for attempt in range(4):
            await asyncio.sleep(1.5)
            frozen = attempt % 2 == 0
            if frozen:
                own_redis.freeze()  # the pipeline commits, then hangs publishing
                await asyncio.sleep(1.5)
            await asyncio.to_thread(stack.kill, "workers")
            if frozen:
                own_redis.thaw()
            await asyncio.to_thread(stack.restart, "workers")
        await sending
        assert await all_delivered(clients, traffic, timeout=20), "not every acknowledged message arrived"
        await asyncio.sleep(1)
        assert_exactly_once(clients, traffic)
        assert not traffic.server_errors()
        for c in clients.values():
            await c.stop()

    asyncio.run(scenario())
    filled = sum(health(u)[1]["realtime"]["gaps_filled_from_log"] for u in stack.urls)
    assert filled > 0, "no kill fell between a commit and its publication"


def test_a_web_process_killed_mid_traffic_its_clients_resume_on_the_other(faulty_stack: Stack):
    stack = faulty_stack
    customers = [stack.register_customer(f"Failover {i}") for i in range(2)]
    agent = stack.agent_token()

    async def scenario() -> None:
        clients = clients_for(stack, customers, agent)
        for c in clients.values():
            c.start()
        assert await wait_for(lambda: all(c.live.is_set() for c in clients.values()), 15)
        traffic = Traffic(stack, agent, customers)
        # Written through the survivor only: the killed process is no longer asked.
        sending = asyncio.create_task(traffic.run(120, 0.05, url=stack.urls[1]))
        await asyncio.sleep(2)
        await asyncio.to_thread(stack.kill, "daphne-0")
        await sending
        assert await all_delivered(clients, traffic, timeout=15), "not every acknowledged message arrived"
        await asyncio.sleep(1)
        assert_exactly_once(clients, traffic)
        assert clients["agent0"].reconnects >= 1  # it was on the killed process, and came back on the other
        assert not traffic.server_errors()
        for c in clients.values():
            await c.stop()

    asyncio.run(scenario())


# -- revocation ---------------------------------------------------------------------------


def _session_login(stack: Stack) -> str:
    """Sign in through the login form like a browser; returns the session cookie."""
    import http.cookiejar
    import re
    import urllib.parse

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{stack.url}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"username": "agent", "password": stack.agent_password, "csrfmiddlewaretoken": token})
    req = urllib.request.Request(f"{stack.url}/accounts/login/", data=form.encode(), headers={"Referer": f"{stack.url}/accounts/login/"})
    opener.open(req)
    cookies = {c.name: c.value for c in jar}
    assert "sessionid" in cookies, "the login form did not sign in"
    return f"sessionid={cookies['sessionid']}; csrftoken={cookies['csrftoken']}"


def _logout(stack: Stack, cookie: str) -> None:
    csrf = dict(p.split("=", 1) for p in cookie.split("; "))["csrftoken"]
    req = urllib.request.Request(
        f"{stack.url}/accounts/logout/", data=f"csrfmiddlewaretoken={csrf}".encode(), method="POST",
        headers={"Cookie": cookie, "Referer": f"{stack.url}/agent/", "Content-Type": "application/x-www-form-urlencoded"},
    )
    urllib.request.urlopen(req).read()


async def _closed_with(ws: Any, timeout: float) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes the socket: its close code and the frames before it."""
    import json

    import websockets

    frames = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                frames.append(json.loads(raw))
    except TimeoutError:
        return None, frames
    except websockets.ConnectionClosed:
        pass
    return ws.close_code, frames


def test_revoking_a_token_signing_out_or_deactivating_an_agent_closes_their_sockets(faulty_stack: Stack):
    import json

    import psycopg
    import websockets

    stack = faulty_stack
    cookie = _session_login(stack)

    async def scenario() -> None:
        token_a, token_b = stack.agent_token(), stack.agent_token()
        by_token = await websockets.connect(stack.ws_url(token_a, 1))
        other_token = await websockets.connect(stack.ws_url(token_b, 0))
        by_session = await websockets.connect(
            stack.urls[0].replace("http://", "ws://") + "/ws/v1/",
            additional_headers={"Cookie": cookie, "Origin": stack.urls[0]},
        )
        for ws in (by_token, other_token, by_session):
            await ws.send(json.dumps({"type": "resume", "after": 0}))

        # 1. The token is revoked: that socket closes with 4401 within 5 s; the other token's stays.
        started = time.monotonic()
        status, _ = await asyncio.to_thread(http, "DELETE", f"{stack.url}/api/v1/auth/agent/token", None, token_a)
        assert status == 204
        code, frames = await _closed_with(by_token, 5)
        assert code == 4401 and time.monotonic() - started <= 5.5
        assert frames[-1]["code"] == "credentials_revoked"

        # 2. Signing out closes the session's socket.
        started = time.monotonic()
        await asyncio.to_thread(_logout, stack, cookie)
        code, _ = await _closed_with(by_session, 5)
        assert code == 4401 and time.monotonic() - started <= 5.5

        # 3. Deactivating the agent closes every socket left, whatever its credential.
        await other_token.send(json.dumps({"type": "ping"}))
        with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("UPDATE auth_user SET is_active = false WHERE username = 'agent'")
        started = time.monotonic()
        code, _ = await _closed_with(other_token, 5)
        assert code == 4401 and time.monotonic() - started <= 5.5

    asyncio.run(scenario())


# -- framing ------------------------------------------------------------------------------


def test_bad_frames_get_an_error_frame_or_a_clean_close_never_a_reset(faulty_stack: Stack):
    import json

    import websockets

    stack = faulty_stack
    customer = stack.register_customer("Framer")

    async def scenario() -> None:
        url = stack.ws_url(customer["token"], 0)
        async with websockets.connect(url) as ws:
            await ws.send(b"\x00\x01binary")
            frame = json.loads(await ws.recv())
            assert frame["type"] == "error" and frame["code"] == "binary_frame"
            await ws.send("x" * 20_000)
            assert json.loads(await ws.recv())["code"] == "frame_too_large"
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv())["type"] == "pong"  # still open and working

        async with websockets.connect(url) as ws:
            await ws.send(b"\xff\xfe not utf-8", text=True)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1007

        async with websockets.connect(url, max_size=None) as ws:
            await ws.send("y" * (2 * 1024 * 1024))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009

    asyncio.run(scenario())
    # Nothing was stored for any of them.
    status, body = http("GET", f"{stack.url}/api/v1/messages?after=0", token=customer["token"])
    assert status == 200 and body["messages"] == []


def test_a_burst_of_sends_from_many_threads_is_acknowledged_without_errors(faulty_stack: Stack):
    """A sanity check of the pooled connections under concurrent HTTP writes."""
    stack = faulty_stack
    customers = [stack.register_customer(f"Burst {i}") for i in range(3)]
    traffic = Traffic(stack, stack.agent_token(), customers)
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(traffic.send, range(120)))
    assert len(traffic.acked) == 120 and not traffic.server_errors()
