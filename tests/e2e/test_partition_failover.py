"""Two `runworkers` share four partitions; one is killed mid-traffic; the other takes its share.

A real stack (Daphne, two `runworkers`, PostgreSQL, Redis) with
``PARLEY_PIPELINE_PARTITIONS=4`` and a short lease. Both processes hold
partitions; under traffic to customers of every partition one of them is
SIGKILLed, and the survivor holds all four within the lease bound (plus one
sharing tick per partition) and catches up. Then: every acknowledged message
reached the agent's open socket exactly once, each
conversation lists each message once, badges and agents' unread counts are
exact, the badge recorded as of every event equals a count of the log, and a
rebuild of the read models from the log equals what the partitions built
live.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack, _start, http, start_stack, stop_stack
from tests.e2e.test_lease_failover import (
    Traffic,
    _badge_history,
    _log,
    _messages_of,
    _wait_until,
    under_traffic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

PARTITIONS = 4
LEASE_SECONDS = 3.0


def takeover_bound(partitions: int, lease: float) -> float:
    """The survivor sees the dead process's heartbeat lapse and its leases run out
    after a lease, then takes one partition per sharing tick (a third of a lease)."""
    return 2 * lease + partitions * lease / 3 + 2.0


TAKEOVER_BOUND_SECONDS = takeover_bound(PARTITIONS, LEASE_SECONDS)
NAMES = [f"pipeline#{p}/{PARTITIONS}" for p in range(PARTITIONS)]


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Stack]:
    stack, drop = start_stack(tmp_path / "stack", web=1, separate_workers=True, extra_env={
        "PARLEY_LEASE_SECONDS": str(LEASE_SECONDS), "PARLEY_PIPELINE_PARTITIONS": str(PARTITIONS)})
    try:
        _start(stack, "workers-2", stack.commands["workers"])
        for name in ("workers", "workers-2"):
            assert _wait_until(lambda n=name: "workers running" in _log(stack, n), 30), stack.dump_logs()
        yield stack
    finally:
        stop_stack(stack)
        drop()


def _partitions(stack: Stack) -> dict[str, dict[str, Any]]:
    status, body = http("GET", f"{stack.url}/healthz")
    assert body is not None and "consumers" in body, (status, body)
    return {name: body["consumers"][name] for name in NAMES}


def lease_holders(stack: Stack, names: Sequence[str], processes: Sequence[str]) -> dict[str, str]:
    """Which of ``processes`` (by name; "?" for any other) holds the lease of each
    checkpoint in ``names``, straight from the checkpoints; lapsed leases are left out."""
    import psycopg

    pids = {stack.named[n].pid: n for n in processes if n in stack.named and stack.named[n].poll() is None}
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT name, owner FROM parley_checkpoints WHERE name = ANY(%s) AND lease_until > now()", [list(names)]
        ).fetchall()
    return {name: pids.get(int(owner.split(":")[1]), "?") for name, owner in rows if owner}


def _holders(stack: Stack) -> dict[str, str]:
    return lease_holders(stack, NAMES, ("workers", "workers-2"))


async def kill_until_taken_over(stack: Stack, victim: str, taken: Callable[[], tuple[bool, Any]], bound: float) -> float:
    """SIGKILL ``victim``, then poll ``taken`` (in a thread: whether the survivors hold
    what it held, and what they hold) for up to three times ``bound``; the seconds the
    takeover took. Then keep the traffic going under the survivors alone for a moment."""
    killed_at = time.monotonic()
    await asyncio.to_thread(stack.kill, victim)
    deadline = killed_at + 3 * bound
    while time.monotonic() < deadline:
        done, seen = await asyncio.to_thread(taken)
        if done:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the survivors did not take over from {victim}: {seen}\n{stack.dump_logs()}")
    took = time.monotonic() - killed_at
    await asyncio.sleep(1.5)  # keep writing under the survivors alone
    return took


def _read_models(stack: Stack) -> dict[str, list[tuple[Any, ...]]]:
    import psycopg

    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        return {
            table: sorted(conn.execute(f"SELECT {cols} FROM {table}").fetchall())
            for table, cols in {
                "readmodels_timelinemessage": "message_id, body, read_at, tx, position",
                "readmodels_conversation": "customer_id, unread_for_agents, awaiting_reply, status, tx, position",
                "readmodels_badge": "customer_id, unread, tx, position",
                "readmodels_unread": "message_id, reader",
                "readmodels_directoryentry": "customer_id, name, tx, position",
            }.items()
        }


def test_a_killed_process_partitions_move_to_the_other_and_every_message_arrives_once(two_workers: Stack):
    stack = two_workers
    # Both processes hold a share (two each) before the traffic starts.
    assert _wait_until(lambda: sorted(Counter(_holders(stack).values()).values()) == [2, 2], 30), (
        _holders(stack), stack.dump_logs())
    customers = [stack.register_customer(f"Partitioned {i}", f"p{i}@example.com") for i in range(8)]
    agent = stack.agent_token()
    traffic = Traffic(stack, agent, customers)
    took: list[float] = []

    def taken() -> tuple[bool, dict[str, str]]:
        holders = _holders(stack)
        return len(holders) == PARTITIONS and set(holders.values()) == {"workers"}, holders

    async def kill_one() -> None:
        took.append(await kill_until_taken_over(stack, "workers-2", taken, TAKEOVER_BOUND_SECONDS))

    async def scenario() -> None:
        await under_traffic(stack, agent, traffic, before=40, fault=kill_one)
        assert traffic.sent() > 40

    asyncio.run(scenario())
    assert took[0] < TAKEOVER_BOUND_SECONDS, (took, TAKEOVER_BOUND_SECONDS)
    assert all(p["lag"] == 0 for p in _partitions(stack).values()) or _wait_until(
        lambda: all(p["lag"] == 0 for p in _partitions(stack).values()), 10)

    for customer in customers:
        cid = customer["customer_id"]
        listed = _messages_of(stack, agent, cid, traffic.position)
        ids = Counter(m["message_id"] for m in listed)
        assert not {m: n for m, n in ids.items() if n > 1}, "a message is listed twice"
        assert set(ids) == set(traffic.agent_sent[cid]) | set(traffic.customer_sent[cid])
        status, badge = http("GET", f"{stack.url}/api/v1/badge?min_position={traffic.position}", token=customer["token"])
        assert status == 200 and badge["unread"] == len(traffic.agent_sent[cid]) - len(traffic.read[cid]), badge
    recorded, counted = _badge_history(stack)
    assert recorded == counted

    # Replay equals live: a rebuild from the log makes the same read models.
    live = _read_models(stack)
    subprocess.run([sys.executable, "manage.py", "rebuild_readmodels"], cwd=ROOT, env=stack.env, check=True,
                   capture_output=True)
    assert _read_models(stack) == live
    print(f"\n{PARTITIONS} partitions, lease {LEASE_SECONDS}s: the survivor held them all {took[0]:.1f}s after the kill "
          f"(bound {TAKEOVER_BOUND_SECONDS:.1f}s); {traffic.sent()} messages")
