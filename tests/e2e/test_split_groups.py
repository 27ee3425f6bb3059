"""The live pipeline and the other consumer groups in processes of their own (`runworkers --groups`).

A real stack (Daphne, PostgreSQL, Redis) with a short lease, unpartitioned
and with ``PARLEY_PIPELINE_PARTITIONS=2``: two processes run only the
pipeline (``--groups pipeline --no-jobs``), a third runs the workflow and
the process managers that follow the pipeline, with the jobs. With two
partitions the pipeline processes share them one each; unpartitioned, one
holds the pipeline and the other stands by. The third holds every partition
of every other group. Under traffic the pipeline process that holds the
pipeline (with two partitions: the second) is SIGKILLed; the other takes
what it held.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventstore.partitions import Partition
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

LEASE_SECONDS = 3.0
PIPELINE_ONLY = ("--groups", "pipeline", "--no-jobs")
THE_REST = ("--groups", "workflow,push,webhooks,email-fallback")
GROUPS = ("pipeline", "workflow", "push", "webhooks", "email-fallback")
PROCESSES = ("workers", "pipeline-2", "rest", "everything")


@dataclass(frozen=True)
class Split:
    stack: Stack
    partitions: int

    def names(self, group: str) -> list[str]:
        """The checkpoints of ``group``'s partitions, in partition order."""
        return [group + Partition(p, self.partitions).suffix() for p in range(self.partitions)]

    def holders(self) -> dict[str, str]:
        return lease_holders(self.stack, [n for g in GROUPS for n in self.names(g)], PROCESSES)

    def layout(self) -> dict[str, list[str]]:
        """For each group, the processes holding its partitions, in partition order ('' for none)."""
        holders = self.holders()
        return {g: [holders.get(n, "") for n in self.names(g)] for g in GROUPS}

    def consumers(self) -> dict[str, dict[str, Any]]:
        status, body = http("GET", f"{self.stack.url}/healthz")
        assert body is not None and "consumers" in body, (status, body)
        return {n: body["consumers"][n] for g in GROUPS for n in self.names(g)}


@pytest.fixture(params=[1, 2], ids=["unpartitioned", "2-partitions"])
def split(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Split]:
    partitions = request.param
    stack, drop = start_stack(tmp_path / "stack", web=1, separate_workers=True, worker_args=PIPELINE_ONLY, extra_env={
        "PARLEY_LEASE_SECONDS": str(LEASE_SECONDS), "PARLEY_PIPELINE_PARTITIONS": str(partitions)})
    try:
        py = sys.executable
        _start(stack, "pipeline-2", [py, "manage.py", "runworkers", *PIPELINE_ONLY])
        _start(stack, "rest", [py, "manage.py", "runworkers", *THE_REST])
        for name in ("workers", "pipeline-2", "rest"):
            assert _wait_until(lambda n=name: "workers running" in _log(stack, n), 30), stack.dump_logs()
        yield Split(stack, partitions)
    finally:
        stop_stack(stack)
        drop()


def test_the_pipeline_runs_apart_from_the_other_groups_and_survives_a_kill(split: Split):
    stack, partitions = split.stack, split.partitions
    rest = ["rest"] * partitions

    def laid_out() -> bool:
        layout = split.layout()
        pipeline = sorted(layout["pipeline"])
        shared = pipeline == ["pipeline-2", "workers"] if partitions == 2 else pipeline in (["pipeline-2"], ["workers"])
        return shared and all(layout[g] == rest for g in GROUPS[1:])

    assert _wait_until(laid_out, 30), (split.layout(), stack.dump_logs())
    # Unpartitioned, one pipeline process holds the pipeline and the other stands by: kill the holder.
    victim = "pipeline-2" if partitions == 2 else split.layout()["pipeline"][0]
    survivor = "workers" if victim == "pipeline-2" else "pipeline-2"
    bound = takeover_bound(partitions, LEASE_SECONDS)
    customers = [stack.register_customer(f"Split {i}", f"s{i}@example.com") for i in range(6)]
    agent = stack.agent_token()
    traffic = Traffic(stack, agent, customers)
    took: list[float] = []

    def taken() -> tuple[bool, dict[str, list[str]]]:
        layout = split.layout()
        return layout["pipeline"] == [survivor] * partitions, layout

    async def kill_one() -> None:
        took.append(await kill_until_taken_over(stack, victim, taken, bound))

    async def scenario() -> None:
        await under_traffic(stack, agent, traffic, before=40, fault=kill_one)

    asyncio.run(scenario())
    assert took[0] < bound, (took, bound)
    # The other groups never moved, and every partition of every group caught up.
    assert all(split.layout()[g] == rest for g in GROUPS[1:])
    assert _wait_until(lambda: all(c["lag"] == 0 for c in split.consumers().values()), 15), split.consumers()

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

    # A process with every group overlaps both sets: it waits for them and holds nothing
    # (partitioned, it says it takes no partition; unpartitioned, that it stands by for
    # the pipeline's lease, which the survivor holds).
    _start(stack, "everything", [sys.executable, "manage.py", "runworkers"])
    said = "taking no partition" if partitions > 1 else "consumer pipeline: another instance holds its lease"
    assert _wait_until(lambda: said in _log(stack, "everything"), 30), _log(stack, "everything")
    time.sleep(2 * LEASE_SECONDS / 3 + 0.5)  # two more sharing ticks
    assert "everything" not in split.holders().values(), split.layout()

    # Replay equals live: a rebuild from the log makes the same read models.
    live = _read_models(stack)
    subprocess.run([sys.executable, "manage.py", "rebuild_readmodels"], cwd=ROOT, env=stack.env, check=True,
                   capture_output=True)
    assert _read_models(stack) == live
