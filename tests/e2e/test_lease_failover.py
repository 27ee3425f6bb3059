"""Two `runworkers` on one database: the standby takes over from a killed holder within the lease.

Real processes on PostgreSQL and Redis: one Daphne, two ``manage.py
runworkers``. Both compete for the pipeline's lease on its row of
``parley_checkpoints``; the row's ``owner`` names the holder as
``<hostname>:<pid>:<random>`` (eventstore.runner.make_owner_id), so the pid
says which process to kill. An agent and two customers write over HTTP all
the while; the holder is killed with SIGKILL, and the test watches
``/healthz`` until the survivor owns the checkpoint and the pipeline's lag
is 0 again. Then the killed process is started again (it becomes the
standby) and the new holder is killed in turn, so both processes are seen
taking over.

The time bound asserted is the lease protocol's own, not a performance
target. The dead holder's lease ends at most ``PARLEY_LEASE_SECONDS`` after
its last batch or renewal, so at most that long after the kill; a standby
that finds the lease held tries again every third of the lease
(``Worker.step``; a wake-up from an append makes it try sooner), so it
holds the lease at most a third of a lease after that; what follows is one
catch-up batch (the backlog is far below one batch of 500 events) and this
test's own sampling of /healthz. A takeover later than that bound means the
protocol is broken (a standby that never looks, a lease renewed by a dead
process), not that the machine is slow. The other direction is checked too:
the survivor never holds the lease before the dead holder's ran out.

Then every message is checked to have been projected exactly once: the
agent's view of each conversation lists each acknowledged message once and
nothing else, the customers' badges and the agents' unread counts are
exact, the badge recorded as of every event that moves one equals a count of
the log up to that event (across the takeover), and an agent's websocket got
every message once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, _start, http, start_stack, stop_stack
from tests.support.wsclient import ProtocolClient, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

#: Short, to keep the test fast; every bound below is derived from it.
LEASE_SECONDS = 3.0
#: A standby whose acquire fails waits this long before it tries again
#: (workers.worker.Worker.step returns PARLEY_LEASE_SECONDS / 3).
STANDBY_RETRY_SECONDS = LEASE_SECONDS / 3
#: How often this test samples /healthz while it waits for the takeover.
SAMPLE_SECONDS = 0.05
#: One catch-up batch (one transaction over a backlog of a few dozen events)
#: and the latency of one /healthz sample: an allowance for observing the
#: takeover, not a speed requirement.
OBSERVE_SLACK_SECONDS = 0.5
#: The correctness bound of the lease protocol on the kill-to-caught-up time.
TAKEOVER_BOUND_SECONDS = LEASE_SECONDS + STANDBY_RETRY_SECONDS + OBSERVE_SLACK_SECONDS


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Stack]:
    """One Daphne and two `runworkers` against one database, on the shared Redis."""
    stack, drop = start_stack(
        tmp_path / "stack", web=1, separate_workers=True, extra_env={"PARLEY_LEASE_SECONDS": str(LEASE_SECONDS)}
    )
    try:
        # The first holds the lease before the second starts; which one holds
        # it when the kill comes is read from the checkpoint, not assumed.
        assert _wait_until(lambda: _pipeline(stack)["running"], 20), f"no pipeline ran:\n{stack.dump_logs()}"
        _start(stack, "workers-2", stack.commands["workers"])
        for name in ("workers", "workers-2"):
            assert _wait_until(lambda n=name: "workers running" in _log(stack, n), 30), (
                f"{name} did not start:\n{stack.dump_logs()}"
            )
        yield stack
    finally:
        stop_stack(stack)
        drop()


def _wait_until(predicate: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def _log(stack: Stack, name: str) -> str:
    path = stack.logs / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _pipeline(stack: Stack) -> dict[str, Any]:
    """The pipeline's position, lag, owner, lease_until and running, as /healthz reports them."""
    status, body = http("GET", f"{stack.url}/healthz", token=stack.metrics_key)  # the owner is for operators
    assert body is not None and "consumers" in body, (status, body)
    return dict(body["consumers"]["pipeline"])


def _pid_of(owner: str) -> int:
    """The process id in an owner string ``<hostname>:<pid>:<random>``."""
    return int(owner.rsplit(":", 2)[1])


def _holder(stack: Stack, owner: str) -> str:
    """Which of the stack's runworkers processes an owner string names."""
    pid = _pid_of(owner)
    names = [n for n in ("workers", "workers-2") if stack.named[n].pid == pid]
    assert names, f"owner {owner!r} is neither runworkers process"
    return names[0]


@dataclass
class Traffic:
    """An agent writing to two customers, the customers writing back and reading, over HTTP."""

    stack: Stack
    agent: str
    customers: list[dict[str, str]]
    agent_sent: dict[str, list[str]] = field(default_factory=dict)  # customer id -> acknowledged agent messages
    customer_sent: dict[str, list[str]] = field(default_factory=dict)  # customer id -> acknowledged customer messages
    read: dict[str, set[str]] = field(default_factory=dict)  # customer id -> agent messages the customer marked read
    statuses: Counter[int] = field(default_factory=Counter)
    position: int = 0  # the highest position a write answered
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for c in self.customers:
            self.agent_sent[c["customer_id"]], self.customer_sent[c["customer_id"]] = [], []
            self.read[c["customer_id"]] = set()

    def _call(self, method: str, path: str, body: Any, token: str) -> tuple[int, Any]:
        status, answer = http(method, f"{self.stack.url}{path}", body, token=token)
        with self.lock:
            self.statuses[status] += 1
            if status in (200, 201) and isinstance(answer, dict) and "position" in answer:
                self.position = max(self.position, int(answer["position"]))
        return status, answer

    def sent(self) -> int:
        with self.lock:
            return sum(map(len, self.agent_sent.values())) + sum(map(len, self.customer_sent.values()))

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            customer = self.customers[i % len(self.customers)]
            cid = customer["customer_id"]
            mid = str(uuid.uuid4())
            status, _ = self._call(
                "POST", f"/api/v1/conversations/{cid}/messages", {"message_id": mid, "body": f"agent {i}"}, self.agent
            )
            if status == 201:
                with self.lock:
                    self.agent_sent[cid].append(mid)
                if i % 3 == 0:  # the customer reads every third agent message at once
                    status, _ = self._call("POST", f"/api/v1/messages/{mid}/read", None, customer["token"])
                    if status == 200:
                        with self.lock:
                            self.read[cid].add(mid)
            if i % 2 == 0:
                mid = str(uuid.uuid4())
                status, _ = self._call("POST", "/api/v1/messages", {"message_id": mid, "body": f"customer {i}"}, customer["token"])
                if status == 201:
                    with self.lock:
                        self.customer_sent[cid].append(mid)
            i += 1
            time.sleep(0.02)


async def under_traffic(
    stack: Stack, agent: str, traffic: Traffic, *, before: int, fault: Callable[[], Awaitable[None]],
) -> None:
    """Watch the agent's open socket while ``traffic`` flows: once ``before``
    messages were acknowledged, inject ``fault`` (it returns when the system
    has recovered); then stop writing and check that every acknowledged
    message reached the socket, and none of them twice."""
    watcher = ProtocolClient([stack.ws_url(agent)], name="agent")
    watcher.start()
    assert await wait_for(watcher.live.is_set, 15), "the agent's socket never went live"
    sending = asyncio.create_task(asyncio.to_thread(traffic.run))
    try:
        # Mid-traffic: messages are flowing and the pipeline is processing them.
        assert await wait_for(lambda: traffic.sent() >= before, 20), f"traffic did not flow: {traffic.statuses}"
        await fault()
    finally:
        traffic.stop.set()
        await sending
    everything = {m for d in (traffic.agent_sent, traffic.customer_sent) for ms in d.values() for m in ms}
    if not await wait_for(lambda: watcher.got(everything), 20):
        missing = everything - set(watcher.sent_ids)
        _, health = http("GET", f"{stack.url}/healthz")
        raise AssertionError(f"the agent's socket missed {len(missing)} of {len(everything)} messages; "
                             f"health: {health}\n{stack.dump_logs()[-6000:]}")
    await asyncio.sleep(1)  # anything twice would have arrived by now
    assert not watcher.duplicates(), watcher.duplicates()
    await watcher.stop()


@dataclass
class Sample:
    at: float  # monotonic, when the answer came back
    wall: float  # time.time(), when the answer came back
    owner: str
    lag: int
    running: bool


def _sample(stack: Stack) -> Sample:
    p = _pipeline(stack)
    return Sample(time.monotonic(), time.time(), p["owner"], int(p["lag"]), bool(p["running"]))


def _messages_of(stack: Stack, agent: str, customer_id: str, min_position: int) -> list[dict[str, Any]]:
    """Every message of a conversation, through the agent API, page by page."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        status, body = http(
            "GET",
            f"{stack.url}/api/v1/conversations/{customer_id}/messages?after={after}&limit=500&min_position={min_position}",
            token=agent,
        )
        assert status == 200, body
        out += body["messages"]
        if len(body["messages"]) < 500:
            return out
        after = body["position"]


def _badge_history(stack: Stack) -> tuple[dict[int, int], dict[int, int]]:
    """(the badge the pipeline recorded as of each event that moves one, the same
    counted from the log in reading order), straight from the database."""
    import psycopg

    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        recorded = {
            int(p): int(u) for p, u in conn.execute(
                "SELECT position, (rows::jsonb->'badge'->>'unread')::int FROM readmodels_eventrows "
                "WHERE rows::jsonb ? 'badge'")  # JSON kept as text (eventstore.tables.JSONText)
        }
        counted: dict[int, int] = {}
        unread: dict[str, set[str]] = {}
        for position, kind, data in conn.execute(
            "SELECT position, event_type, data::jsonb FROM parley_events WHERE event_type IN "
            "('MessageSent', 'MessageMarkedAsRead') ORDER BY tx, position"
        ):
            mine = unread.setdefault(data["customer_id"], set())
            if kind == "MessageSent" and data["sender_kind"] == "agent":
                mine.add(data["message_id"])
            elif kind == "MessageMarkedAsRead" and data["reader_kind"] == "customer":
                mine.discard(data["message_id"])
            else:
                continue
            counted[int(position)] = len(mine)
    return recorded, counted


@dataclass
class Failover:
    victim: str
    survivor: str
    took: float  # kill -> the survivor owns the checkpoint and the lag is 0
    owned: float  # kill -> first sample showing the survivor as owner
    peak: int  # the highest lag seen meanwhile


def _checkpoint_holder(stack: Stack) -> tuple[str, float]:
    """The pipeline checkpoint's owner and lease end (epoch seconds), straight from parley_checkpoints."""
    import psycopg

    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        owner, until = conn.execute("SELECT owner, lease_until FROM parley_checkpoints WHERE name = 'pipeline'").fetchone()
    return owner, until.timestamp() if until else 0.0


async def _kill_holder_and_watch(stack: Stack, traffic: Traffic) -> Failover:
    """SIGKILL whichever runworkers holds the lease; sample /healthz until the other owns it at lag 0."""
    owner, lease_until = await asyncio.to_thread(_checkpoint_holder, stack)
    assert owner and lease_until > time.time(), ("no live holder", owner, lease_until)
    victim = _holder(stack, owner)
    survivor = "workers-2" if victim == "workers" else "workers"
    survivor_pid = stack.named[survivor].pid

    sent_at_kill = traffic.sent()
    killed_at = time.monotonic()
    await asyncio.to_thread(stack.kill, victim)

    samples: list[Sample] = []
    deadline = killed_at + 3 * TAKEOVER_BOUND_SECONDS  # give up well past the bound, to report what was seen
    while time.monotonic() < deadline:
        s = await asyncio.to_thread(_sample, stack)
        samples.append(s)
        if s.running and s.owner and _pid_of(s.owner) == survivor_pid and s.lag == 0:
            break
        await asyncio.sleep(SAMPLE_SECONDS)
    else:
        raise AssertionError(f"no takeover within {3 * TAKEOVER_BOUND_SECONDS:.1f}s: {samples[-3:]}\n{stack.dump_logs()}")

    first = next(s for s in samples if s.owner and _pid_of(s.owner) == survivor_pid)
    # Never early: the survivor is seen as owner only once the lease the
    # dead holder was last seen holding has run out.
    assert first.wall >= lease_until, ("the survivor held the lease before the dead holder's ran out", first, lease_until)
    # The kill fell mid-traffic: writes were acknowledged while no pipeline
    # ran, and the log got ahead of the checkpoint.
    assert traffic.sent() > sent_at_kill
    assert max(s.lag for s in samples) > 0, samples
    return Failover(victim, survivor, samples[-1].at - killed_at, first.at - killed_at, max(s.lag for s in samples))


def test_the_standby_takes_over_from_a_killed_holder_within_the_lease_and_nothing_is_projected_twice(two_workers: Stack):
    stack = two_workers
    customers = [stack.register_customer(f"Failover {i}", f"failover{i}@example.com") for i in range(2)]
    agent = stack.agent_token()
    traffic = Traffic(stack, agent, customers)
    failovers: list[Failover] = []

    async def kill_twice() -> None:
        failovers.append(await _kill_holder_and_watch(stack, traffic))
        # The killed process comes back as the standby; then its successor dies in turn.
        victim = failovers[-1].victim
        started = _log(stack, victim).count("workers running")
        await asyncio.to_thread(stack.restart, victim)
        assert await wait_for(lambda: _log(stack, victim).count("workers running") > started, 30), stack.dump_logs()
        await asyncio.sleep(1)
        failovers.append(await _kill_holder_and_watch(stack, traffic))
        assert failovers[1].survivor == victim
        await asyncio.sleep(1.5)  # keep writing under the last holder

    async def scenario() -> None:
        await under_traffic(stack, agent, traffic, before=30, fault=kill_twice)

    asyncio.run(scenario())
    print(f"\nlease {LEASE_SECONDS}s, bound {TAKEOVER_BOUND_SECONDS:.2f}s, {traffic.sent()} messages sent")
    for f in failovers:
        print(
            f"  killed {f.victim}: {f.survivor} seen owning the checkpoint {f.owned:.2f}s after the kill, "
            f"at lag 0 after {f.took:.2f}s; the lag peaked at {f.peak}"
        )

    # The lease protocol's bound (see the module docstring): not a speed target.
    for f in failovers:
        assert f.took <= TAKEOVER_BOUND_SECONDS, (
            f"{f.survivor} took {f.took:.2f}s to take over; the lease protocol promises at most {LEASE_SECONDS}s "
            f"lease + {STANDBY_RETRY_SECONDS:.2f}s standby retry + {OBSERVE_SLACK_SECONDS}s to observe it"
        )
    assert set(traffic.statuses) <= {200, 201}, traffic.statuses

    # Exactly once, as agents and customers see it.
    for customer in customers:
        cid = customer["customer_id"]
        listed = _messages_of(stack, agent, cid, traffic.position)
        ids = Counter(m["message_id"] for m in listed)
        assert not {m: n for m, n in ids.items() if n > 1}, "a message is listed twice"
        assert set(ids) == set(traffic.agent_sent[cid]) | set(traffic.customer_sent[cid])
        assert {m["message_id"] for m in listed if m["read_at"]} == traffic.read[cid]

        status, badge = http(
            "GET", f"{stack.url}/api/v1/badge?min_position={traffic.position}", token=customer["token"]
        )
        assert status == 200 and badge["unread"] == len(traffic.agent_sent[cid]) - len(traffic.read[cid]), badge

        status, detail = http(
            "GET", f"{stack.url}/api/v1/conversations/{cid}?min_position={traffic.position}", token=agent
        )
        assert status == 200 and detail["conversation"]["unread_for_agents"] == len(traffic.customer_sent[cid]), detail

    # Exact across the takeover, as the database holds it: the badge recorded as
    # of each event that moves one is the count of the log up to that event.
    recorded, counted = _badge_history(stack)
    assert recorded == counted, {p: (recorded.get(p), counted.get(p)) for p in set(recorded) | set(counted)
                                 if recorded.get(p) != counted.get(p)}

    # The survivors went on without an error.
    for name in ("workers", "workers-2"):
        assert "Traceback" not in _log(stack, name), _log(stack, name)[-4000:]
