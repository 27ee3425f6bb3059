"""Running a fair share of the partitions of a partitioned pipeline (eventstore.sharing).

``run_share`` is the loop each ``runworkers`` process runs when
``PARLEY_PIPELINE_PARTITIONS`` is above one: every tick it says it is alive,
takes a free partition while below its fair share (after winning that
partition's lease on the leading group), gives one back while above it,
and drops a partition whose leading lease it lost. What running a partition
means (which groups, which tasks) is the composition root's: it hands in
``start``, which starts a partition's workers and returns their ``Unit``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from eventstore import sharing
from eventstore.partitions import Partition
from eventstore.runner import ConsumerRunner
from workers.dbthreads import DatabaseThreads

log = logging.getLogger(__name__)


@dataclass
class Unit:
    """A partition this process runs: the runner whose lease decides who runs it, and the tasks."""

    partition: Partition
    leader: ConsumerRunner
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    lost_since: float | None = None

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


Start = Callable[[Partition, ConsumerRunner, asyncio.Event], Awaitable[list[asyncio.Task[None]]]]


async def run_share(
    *, groups: Sequence[str], count: int, owner: str, make_leader: Callable[[Partition], ConsumerRunner],
    start: Start, stop: asyncio.Event, tick: float | None = None,
) -> None:
    """Hold this process's fair share of the ``count`` partitions of ``groups`` until ``stop``.

    A partition is claimed by the lease of its first group (``make_leader``
    makes that group's runner); the share is counted among the live
    processes that run the same groups (eventstore.sharing)."""
    tick = tick if tick is not None else min(1.0, settings.PARLEY_LEASE_SECONDS / 3)
    group = groups[0]
    db = DatabaseThreads(1, "partition-share")
    units: dict[Partition, Unit] = {}
    yielding_to: str | None = None  # the process yielded to at the last tick, for the log

    async def step() -> None:
        nonlocal yielding_to
        peers = await db(sharing.heartbeat)(owner, groups)
        if peers.yield_to != yielding_to:
            if peers.yield_to is not None:
                log.warning("%s: an older process (%s) runs some of these groups (%s) with others; taking no "
                            "partition until it stops (give every process that runs a group the same --groups)",
                            owner, peers.yield_to, ", ".join(groups))
            else:
                log.info("%s: no older process runs an overlapping set of groups any more", owner)
            yielding_to = peers.yield_to
        alive = peers.alive
        now = time.monotonic()
        for unit in list(units.values()):  # a partition whose leading lease went elsewhere is not ours
            if unit.leader.cursor is None:
                unit.lost_since = unit.lost_since or now
                if now - unit.lost_since > settings.PARLEY_LEASE_SECONDS:
                    log.info("partition %s of %s: its lease went elsewhere; stopping it here", unit.partition.index, group)
                    await units.pop(unit.partition).close()
            else:
                unit.lost_since = None
        free = await db(sharing.free_partitions)(group, count)
        decision = sharing.plan(list(units), [p for p in free if p not in units], alive, count,
                                yielding=peers.yield_to is not None)
        if decision.give_back is not None:
            log.info("partition %s of %s: given back (%d processes share %d partitions)",
                     decision.give_back.index, group, alive, count)
            await units.pop(decision.give_back).close()
        elif decision.take is not None:
            leader = make_leader(decision.take)
            if await db(leader.acquire_lease)():
                unit_stop = asyncio.Event()
                unit = Unit(decision.take, leader, unit_stop)
                unit.tasks = await start(decision.take, leader, unit_stop)
                units[decision.take] = unit
                log.info("partition %s of %s: taken (%d processes share %d partitions)",
                         decision.take.index, group, alive, count)

    try:
        while not stop.is_set():
            try:
                await step()
            except Exception:
                log.exception("sharing the partitions of %s failed; trying again", group)
            try:
                await asyncio.wait_for(stop.wait(), timeout=tick)
            except TimeoutError:
                pass
    finally:
        for unit in list(units.values()):
            await unit.close()
        try:
            await db(sharing.leave)(owner)
        except Exception:
            log.warning("could not say this process leaves the partitions of %s", group, exc_info=True)
        await asyncio.to_thread(db.close_connections)
        db.shutdown()
