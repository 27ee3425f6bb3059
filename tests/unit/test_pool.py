"""The pool that works a queue in a process (workers.pool), with a job of plain Python:
what it counts per group, what it does with a round whose work raised, how it stops."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from workers import wakeup
from workers.pool import Pool, run_pool


@dataclass
class Work:
    group: Hashable
    number: int


class Job:
    """Rounds of two groups; the first round of ``fails`` raises. Claims respect ``busy``
    the way the queue's do: no group gets more than ``cap`` rounds at once."""

    def __init__(self, *, rounds: dict[str, int], cap: int, fails: str | None = None) -> None:
        self.stopping = threading.Event()
        self.todo = [Work(g, i) for g, n in rounds.items() for i in range(n)]
        self.cap, self.fails = cap, fails
        self.lock = threading.Lock()
        self.at_once: Counter[Hashable] = Counter()
        self.most: Counter[Hashable] = Counter()
        self.settled: list[Work] = []
        self.released: list[Work] = []
        self.reported: list[Work] = []
        self.handed_back_all = False

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def claim(self, rounds: int, busy: Mapping[Hashable, int]) -> list[Work]:
        taken: list[Work] = []
        counts = Counter(busy)
        with self.lock:
            for work in list(self.todo):
                if len(taken) < rounds and counts[work.group] < self.cap:
                    counts[work.group] += 1
                    taken.append(work)
                    self.todo.remove(work)
        return taken

    def perform(self, work: Work) -> Work:
        with self.lock:
            self.at_once[work.group] += 1
            self.most[work.group] = max(self.most[work.group], self.at_once[work.group])
        time.sleep(0.05)
        with self.lock:
            self.at_once[work.group] -= 1
        if work.group == self.fails and work.number == 0:
            raise RuntimeError("the receiver's answer made no sense")
        return work

    def settle(self, outcomes: list[Work]) -> None:
        self.settled += outcomes

    def release(self, work: list[Work]) -> None:
        self.released += work

    def report(self, work: Work, error: BaseException) -> None:
        self.reported.append(work)

    def next_due(self) -> dt.datetime | None:
        return None

    def chores(self) -> None:
        return None

    def release_all(self) -> None:
        self.handed_back_all = True

    def close(self) -> None:
        return None


class HangingJob(Job):
    """Rounds of the groups in ``hang`` hold their thread until the event is set; the others end at once."""

    def __init__(self, *, rounds: dict[str, int], cap: int, hang: dict[str, threading.Event]) -> None:
        super().__init__(rounds=rounds, cap=cap)
        self.hang = hang

    def perform(self, work: Work) -> Work:
        with self.lock:
            self.at_once[work.group] += 1
        if work.group in self.hang:
            self.hang[work.group].wait()
        with self.lock:
            self.at_once[work.group] -= 1
        return work


def run(job: Job, *, threads: int, until_settled: int, meanwhile: Callable[[], None] = lambda: None,
        **pool: Any) -> None:
    """Run a pool on ``job`` until ``until_settled`` rounds are settled; ``meanwhile`` runs in a thread beside it."""
    async def scenario() -> None:
        stop = asyncio.Event()
        options = Pool(name="test pool", make=lambda owner: job, signal=wakeup.Signal(), channel="parley_test_pool",
                       threads=threads, poll=0.05, per_group=job.cap, **pool)
        task = asyncio.create_task(run_pool(options, stop, relay=False))
        beside = asyncio.create_task(asyncio.to_thread(meanwhile))
        deadline = time.monotonic() + 30
        while len(job.settled) < until_settled and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await beside
        stop.set()
        await task

    asyncio.run(scenario())


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_a_group_never_gets_more_threads_than_its_share_and_the_others_go_on():
    job = Job(rounds={"slow": 12, "fast": 12}, cap=2)
    run(job, threads=4, until_settled=24)
    assert len(job.settled) == 24
    assert job.most["slow"] <= 2 and job.most["fast"] <= 2
    assert job.most["slow"] == 2  # and it did use its share


def test_a_round_whose_work_raised_is_reported_and_handed_back_and_the_rest_go_on():
    job = Job(rounds={"a": 3, "b": 3}, cap=3, fails="a")
    run(job, threads=2, until_settled=5)
    assert [(w.group, w.number) for w in job.reported] == [("a", 0)]
    assert [(w.group, w.number) for w in job.released] == [("a", 0)]
    assert sorted((w.group, w.number) for w in job.settled) == [("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert job.handed_back_all  # on stopping, whatever the job still holds goes back


def test_a_kept_thread_goes_to_a_group_with_nothing_in_flight_that_was_not_slow():
    # Two threads, one kept; every round counts as slow (slow_after=0). "hung"
    # holds the other thread; "slow" ran a round already, so it waits, and a
    # group never seen before takes the kept thread while "hung" still hangs.
    hung = threading.Event()
    job = HangingJob(rounds={"hung": 1, "slow": 2}, cap=1, hang={"hung": hung})
    seen: dict[str, Any] = {}

    def meanwhile() -> None:
        try:
            wait_for(lambda: ("slow", 0) in [(w.group, w.number) for w in job.settled])
            with job.lock:
                job.todo.append(Work("new", 0))  # after slow's second round, which is older
            wait_for(lambda: ("new", 0) in [(w.group, w.number) for w in job.settled])
            seen["settled"] = sorted((w.group, w.number) for w in job.settled)
            seen["hanging"] = job.at_once["hung"]
        finally:
            hung.set()

    run(job, threads=2, until_settled=4, meanwhile=meanwhile, reserve=1, slow_after=0.0)
    assert seen == {"settled": [("new", 0), ("slow", 0)], "hanging": 1}
    assert len(job.settled) == 4  # once "hung" answered, "slow" had its turn
