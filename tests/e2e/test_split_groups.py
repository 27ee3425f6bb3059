"""The live pipeline and the other consumer groups in processes of their own (`runworkers --groups`).

A real stack (Daphne, PostgreSQL, Redis) with ``PARLEY_PIPELINE_PARTITIONS=2``
and a short lease: two processes run only the pipeline (``--groups pipeline
--no-jobs``), a third runs the workflow and the process managers that follow
the pipeline, with the jobs. The pipeline processes share its two partitions
one each; the third holds both partitions of every other group. Under
traffic one pipeline process is SIGKILLed; the other takes its partition.
Then: every acknowledged message reached the agent's open socket exactly
once, the workflow (in the other process) assigned every conversation to
the agent who answered it and the pipeline projected that, every group's
partitions are caught up, badges are exact, and a rebuild equals what ran
live. A process started afterwards with every group (overlapping the
others' sets) takes no partition while they live.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
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
from tests.e2e.test_partition_failover import _read_models, kill_until_taken_over, lease_holders, takeover_bound

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

PARTITIONS = 2
LEASE_SECONDS = 3.0
TAKEOVER_BOUND_SECONDS = takeover_bound(PARTITIONS, LEASE_SECONDS)
PIPELINE_ONLY = ("--groups", "pipeline", "--no-jobs")
THE_REST = ("--groups", "workflow,push,webhooks,email-fallback")
GROUPS = ("pipeline", "workflow", "push", "webhooks", "email-fallback")
PROCESSES = ("workers", "pipeline-2", "rest", "everything")


def _names(group: str) -> list[str]:
    return [f"{group}#{p}/{PARTITIONS}" for p in range(PARTITIONS)]


@pytest.fixture
def split(tmp_path: Path) -> Iterator[Stack]:
    stack, drop = start_stack(tmp_path / "stack", web=1, separate_workers=True, worker_args=PIPELINE_ONLY, extra_env={
        "PARLEY_LEASE_SECONDS": str(LEASE_SECONDS), "PARLEY_PIPELINE_PARTITIONS": str(PARTITIONS)})
    try:
        py = sys.executable
        _start(stack, "pipeline-2", [py, "manage.py", "runworkers", *PIPELINE_ONLY])
        _start(stack, "rest", [py, "manage.py", "runworkers", *THE_REST])
        for name in ("workers", "pipeline-2", "rest"):
            assert _wait_until(lambda n=name: "workers running" in _log(stack, n), 30), stack.dump_logs()
        yield stack
    finally:
        stop_stack(stack)
        drop()


def _holders(stack: Stack) -> dict[str, str]:
    return lease_holders(stack, [n for g in GROUPS for n in _names(g)], PROCESSES)


def _layout(holders: dict[str, str]) -> dict[str, list[str]]:
    """For each group, the processes holding its partitions, in partition order ('' for none)."""
    return {g: [holders.get(n, "") for n in _names(g)] for g in GROUPS}


def _consumers(stack: Stack) -> dict[str, dict[str, Any]]:
    status, body = http("GET", f"{stack.url}/healthz")
    assert body is not None and "consumers" in body, (status, body)
    return {n: body["consumers"][n] for g in GROUPS for n in _names(g)}


def test_the_pipeline_runs_apart_from_the_other_groups_and_survives_a_kill(split: Stack):
    stack = split

    def laid_out() -> bool:
        layout = _layout(_holders(stack))
        return sorted(layout["pipeline"]) == ["pipeline-2", "workers"] and all(
            layout[g] == ["rest", "rest"] for g in GROUPS[1:])

    assert _wait_until(laid_out, 30), (_layout(_holders(stack)), stack.dump_logs())
    customers = [stack.register_customer(f"Split {i}", f"s{i}@example.com") for i in range(6)]
    agent = stack.agent_token()
    traffic = Traffic(stack, agent, customers)
    took: list[float] = []

    def taken() -> tuple[bool, dict[str, list[str]]]:
        layout = _layout(_holders(stack))
        return layout["pipeline"] == ["workers", "workers"], layout

    async def kill_one() -> None:
        took.append(await kill_until_taken_over(stack, "pipeline-2", taken, TAKEOVER_BOUND_SECONDS))

    async def scenario() -> None:
        await under_traffic(stack, agent, traffic, before=40, fault=kill_one)

    asyncio.run(scenario())
    assert took[0] < TAKEOVER_BOUND_SECONDS, (took, TAKEOVER_BOUND_SECONDS)
    # The other groups never moved, and every partition of every group caught up.
    assert all(_layout(_holders(stack))[g] == ["rest", "rest"] for g in GROUPS[1:])
    assert _wait_until(lambda: all(c["lag"] == 0 for c in _consumers(stack).values()), 15), _consumers(stack)

    # The workflow, in its own process, assigned each conversation to the agent who
    # answered it; the pipeline, in another, projected those assignments.
    def assigned() -> set[str]:
        status, body = http("GET", f"{stack.url}/api/v1/conversations?limit=100&assignee=me"
                            f"&min_position={traffic.position}", token=agent)
        assert status == 200, body
        return {c["customer_id"] for c in body["conversations"]}

    answered = {cid for cid, sent in traffic.agent_sent.items() if sent}
    assert answered and _wait_until(lambda: assigned() == answered, 15), (assigned(), answered)

    for customer in customers:
        cid = customer["customer_id"]
        ids = Counter(m["message_id"] for m in _messages_of(stack, agent, cid, traffic.position))
        assert not {m: n for m, n in ids.items() if n > 1}, "a message is listed twice"
        assert set(ids) == set(traffic.agent_sent[cid]) | set(traffic.customer_sent[cid])
        status, badge = http("GET", f"{stack.url}/api/v1/badge?min_position={traffic.position}", token=customer["token"])
        assert status == 200 and badge["unread"] == len(traffic.agent_sent[cid]) - len(traffic.read[cid]), badge
    recorded, counted = _badge_history(stack)
    assert recorded == counted

    # A process with every group overlaps both sets: it waits for them and holds nothing.
    _start(stack, "everything", [sys.executable, "manage.py", "runworkers"])
    assert _wait_until(lambda: "taking no partition" in _log(stack, "everything"), 30), _log(stack, "everything")
    time.sleep(2 * LEASE_SECONDS / 3 + 0.5)  # two more sharing ticks
    assert "everything" not in _holders(stack).values(), _layout(_holders(stack))

    # Replay equals live: a rebuild from the log makes the same read models.
    live = _read_models(stack)
    subprocess.run([sys.executable, "manage.py", "rebuild_readmodels"], cwd=ROOT, env=stack.env, check=True,
                   capture_output=True)
    assert _read_models(stack) == live
