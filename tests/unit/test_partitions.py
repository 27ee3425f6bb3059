"""Partitions of the pipeline without a database: shards, names, and the fair share."""

from __future__ import annotations

import dataclasses
import importlib
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.events import SHARDS, _registry, partition_key_field, shard_of
from eventstore.partitions import Partition
from eventstore.sharing import Plan, plan, share


def test_a_customers_shard_is_fixed_and_within_range():
    customer = uuid.UUID("6c60b83a-e5be-4e39-9b28-9601610f81be")
    assert shard_of(customer) == shard_of(str(customer))  # the text of the id is what is hashed
    assert 0 <= shard_of(customer) < SHARDS
    # A known value: the migration computes the same in SQL (md5, first 16 bits, mod 1024).
    assert shard_of("6c60b83a-e5be-4e39-9b28-9601610f81be") == int("0x" + __import__("hashlib").md5(
        b"6c60b83a-e5be-4e39-9b28-9601610f81be").hexdigest()[:4], 16) % SHARDS


def test_customers_spread_over_the_shards():
    shards = [shard_of(uuid.uuid4()) for _ in range(4000)]
    for n in (2, 4):
        counts = [sum(1 for s in shards if s % n == p) for p in range(n)]
        assert min(counts) > 0.8 * len(shards) / n  # no partition starves


def test_one_partition_keeps_the_groups_names_and_more_name_each_part():
    assert Partition(0, 1).suffix() == ""
    assert Partition(2, 4).suffix() == "#2/4"
    assert Partition(1, 2).holds(7) and not Partition(1, 2).holds(8) and Partition(0, 2).holds(None)
    with pytest.raises(ValueError):
        Partition(4, 4)


def test_a_fair_share_is_the_partitions_over_the_live_processes_rounded_up():
    assert [share(4, alive) for alive in (0, 1, 2, 3, 4, 5)] == [4, 4, 2, 2, 1, 1]


def parts(*indexes: int, n: int = 4) -> list[Partition]:
    return [Partition(i, n) for i in indexes]


def test_a_process_below_its_share_takes_the_lowest_free_partition():
    assert plan(held=parts(2), free=parts(1, 3), alive=2, count=4).take == Partition(1, 4)


def test_a_process_above_its_share_gives_back_its_highest_partition():
    decision = plan(held=parts(0, 1, 2, 3), free=[], alive=2, count=4)
    assert decision.give_back == Partition(3, 4) and decision.take is None


def test_a_process_at_its_share_stays_put():
    assert plan(held=parts(0, 1), free=parts(2), alive=2, count=4) == plan(held=[], free=[], alive=1, count=0)


@given(st.integers(1, 8), st.integers(1, 4), st.randoms(use_true_random=False))
def test_processes_that_plan_in_turn_end_with_every_partition_held_once_and_shares_within_one(n, processes, rnd):
    """Any number of processes, each planning once a tick in any order against the
    same leases, converge within a few ticks per partition: every partition held
    by exactly one, no process holding more than the fair share."""
    held: dict[int, list[Partition]] = {i: [] for i in range(processes)}
    for _ in range(2 * n + 2):  # rounds: every process plans once a round (each ticks), in any order
        order = list(range(processes))
        rnd.shuffle(order)
        for i in order:
            taken = {p for ps in held.values() for p in ps}
            free = [Partition(k, n) for k in range(n) if Partition(k, n) not in taken]
            decision = plan(held[i], free, processes, n)
            if decision.give_back is not None:
                held[i].remove(decision.give_back)
            elif decision.take is not None:
                held[i].append(decision.take)
    everyone = sorted(p.index for ps in held.values() for p in ps)
    assert everyone == list(range(n))
    assert max(len(ps) for ps in held.values()) <= share(n, processes)


def test_every_event_about_a_customer_is_partitioned_by_that_customer():
    """An event type that names a customer but declares no partition key lands
    in shard 0, away from the rest of that customer's events: a partitioned
    pipeline would then apply it out of order (a label change before the
    snooze it followed). Every context's events module is loaded and checked."""
    root = Path(__file__).resolve().parents[2]
    for module in sorted(root.glob("*/events.py")):
        importlib.import_module(f"{module.parent.name}.events")
    about_a_customer = {
        name for name, cls in _registry.items()
        if "customer_id" in {f.name for f in dataclasses.fields(cls)}
    }
    assert len(about_a_customer) >= 15
    unpartitioned = sorted(n for n in about_a_customer if partition_key_field(n) != "customer_id")
    assert unpartitioned == []


def test_a_processs_groups_come_in_the_deployments_order_whatever_order_they_are_named_in():
    from project.bootstrap import GROUPS, chosen

    assert chosen(None) == tuple(GROUPS)
    assert chosen(["email-fallback", " workflow", "pipeline", "workflow"]) == ("pipeline", "workflow", "email-fallback")
    with pytest.raises(ValueError, match="no consumer group named nope"):
        chosen(["pipeline", "nope"])


def test_a_yielding_process_gives_back_what_it_holds_and_takes_nothing():
    held, free = [Partition(0, 4)], [Partition(1, 4), Partition(2, 4)]
    assert plan(held, free, alive=1, count=4, yielding=True) == Plan(give_back=Partition(0, 4))
    assert plan([], free, alive=1, count=4, yielding=True) == Plan()
