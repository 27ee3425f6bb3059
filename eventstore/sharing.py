"""How processes share the partitions of a partitioned pipeline, without a coordinator.

Every process that runs consumer groups says it is alive (``ConsumerProcess``,
renewed every few seconds) and aims at a fair share: with ``n`` partitions
and ``alive`` processes, at most ``ceil(n / alive)`` each. A process below
its share takes a free partition (one whose lease nobody holds, or whose
holder let it lapse); one above it gives its last partition back at a batch
boundary, for another to take. So a new process takes some partitions
within a few ticks of its start, and a dead process's partitions move to the
others once its leases and its heartbeat have lapsed: within the lease
bound plus a tick per partition.

Each partition is claimed as a unit: the process that holds the lease of
its first group's partition ``p`` runs partition ``p`` of every group it
runs (by default all of them: the read models, the workflow, and the
process managers that follow them), so a partition's groups wake each other
in-process. Leases stay per checkpoint: a group's partition is only ever
processed by its lease holder, whatever the supervisor thinks
(eventstore.runner).

A deployment may run the groups in separate processes (``runworkers
--groups``: the live pipeline in one set of processes, the rest in
another). Processes share partitions with those that run the same groups
and ignore the others, so each set of groups is spread over its own
processes. Sets must not overlap partly: a process whose groups share some
but not all with an older live process's takes no partition until that
process is gone (the older one keeps running them all), so a change of
layout rolls over without two processes each believing the other covers a
group.

The decision (``Plan``) is a pure function of what is held, what is free and
how many processes are alive; the database part is the heartbeat and the
view of the pipeline's leases.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from eventstore.models import ConsumerProcess
from eventstore.partitions import Partition


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def share(partitions: int, alive: int) -> int:
    """The most partitions one of ``alive`` processes should hold."""
    return math.ceil(partitions / max(1, alive))


@dataclass(frozen=True)
class Plan:
    """What one process does at a tick: take one partition, give one back, or nothing."""

    take: Partition | None = None
    give_back: Partition | None = None


def plan(held: list[Partition], free: list[Partition], alive: int, count: int, *, yielding: bool = False) -> Plan:
    """One step towards this process's fair share (one at a time, so processes converge
    without taking more than they keep): above it, give back the highest
    partition held; below it, take the lowest free one. A process that
    yields to another (``Peers.yield_to``) aims at none."""
    target = 0 if yielding else share(count, alive)
    if len(held) > target:
        return Plan(give_back=max(held, key=lambda p: p.index))
    if len(held) < target and free:
        return Plan(take=min(free, key=lambda p: p.index))
    return Plan()


@dataclass(frozen=True)
class Peers:
    """What one heartbeat learnt about the other live processes."""

    #: Live processes that run the same groups, this one included.
    alive: int
    #: An older live process whose groups overlap this one's without being the
    #: same: this process holds no partition while it lives (see the module docstring).
    yield_to: str | None = None


def heartbeat(owner: str, groups: Sequence[str]) -> Peers:
    """Say this process is alive and runs ``groups`` (in the deployment's order)."""
    now = _now()
    mine = ",".join(groups)
    ConsumerProcess.objects.update_or_create(owner=owner, defaults={"seen_at": now, "groups": mine}, create_defaults={
        "started_at": now, "seen_at": now, "groups": mine})
    lapse = now - dt.timedelta(seconds=settings.PARLEY_LEASE_SECONDS)
    live = list(ConsumerProcess.objects.filter(seen_at__gte=lapse).values_list("owner", "started_at", "groups"))
    started = next(at for who, at, _ in live if who == owner)
    overlapping = sorted(
        (at, who) for who, at, theirs in live
        if theirs != mine and set(theirs.split(",")) & set(groups) and (at, who) < (started, owner)
    )
    return Peers(alive=sum(theirs == mine for _, _, theirs in live),
                 yield_to=overlapping[0][1] if overlapping else None)


def leave(owner: str) -> None:
    """This process stops: the others need not wait for its heartbeat to lapse."""
    ConsumerProcess.objects.filter(owner=owner).delete()


def free_partitions(group: str, count: int) -> list[Partition]:
    """The partitions of ``group`` whose lease nobody holds now."""
    now = connection.ops.adapt_datetimefield_value(_now())
    parts = [Partition(i, count) for i in range(count)]
    names = {group + p.suffix(): p for p in parts}
    marks = ", ".join(["%s"] * len(names))
    with connection.cursor() as c:
        c.execute(
            f"SELECT name FROM parley_checkpoints WHERE name IN ({marks}) AND owner <> '' "
            "AND lease_until IS NOT NULL AND lease_until >= %s",
            [*names, now],
        )
        held = {names[row[0]] for row in c.fetchall()}
    return [p for p in parts if p not in held]
