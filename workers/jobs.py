"""The one durable queue: rows claimed, leased, retried and finished exactly once.

Push deliveries, webhook deliveries, emails and timers are rows of tables of
their own (their columns mean different things and their unique keys and
foreign keys differ; and a release must leave the previous one's code
working on the same tables while both run), but they are queued, claimed,
leased, retried and finished by this one mechanism. A ``Queue`` names the
table and which of its columns play each part; everything else is here:

* **Pending until finished once.** A row is ``pending`` until it reaches a
  final state of its kind (``sent``, ``delivered``, ``dead``...). Every
  change is conditional on ``pending``, so a row is finished exactly once,
  whoever else holds it.
* **Due.** A row may be taken once its due time has come: when it was
  queued, a delay, a retry's backoff, a hold.
* **Claim.** ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL: any number
  of workers in any number of processes take different rows and never wait
  for each other. SQLite has one writer at a time and ignores FOR UPDATE;
  the claim's write transaction is exclusive, and its conditional UPDATE is
  the claim.
* **Lease.** A claimed row's due time moves to the end of its lease and its
  owner is recorded, in the claim's transaction. So the work itself runs
  outside any transaction, and a worker that dies leaves rows that fall due
  again when the lease runs out: taken again, sent again (the at-least-once
  edge each kind documents), never lost. Handing rows back puts their due
  time back. (Timers are the exception: their handler runs in the claim's
  transaction, whose row lock is the lease; a crash rolls both back.)
* **Lanes.** Rows of one lane (a device; an endpoint and a customer) go one
  at a time, in the order they were queued: only the oldest pending row of
  a lane may be claimed, with the due rows right behind it. A row that is
  leased, or waits for its retry or hold, is not due and holds back the
  rest of its lane.
* **Groups.** Lanes belong to a group (a webhook endpoint); a process works
  on at most a set number of rounds of one group at a time
  (workers.pool), so a hung or slow group holds only its own share of the
  threads.
* **Retries** back off exponentially with jitter (workers.loop.backoff);
  each kind decides when to give up (a number of attempts, a give-up time)
  and finishes the row as dead or failed, with the last reason.
* **Wake on commit.** A row queued in this process wakes its workers when
  the transaction commits (a ``Signal``), other processes through Redis or
  NOTIFY on the queue's channel. Otherwise workers sleep until the next
  due row (``next_due``), at most their poll interval.
* **Purge.** Finished rows are deleted after their retention.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.db import connection, models, transaction
from django.db.models import Exists, Min, OuterRef, Q

from eventstore.tables import Table
from workers import wakeup
from workers.loop import backoff

PENDING = "pending"

M = TypeVar("M", bound=models.Model)


@dataclass
class Lane(Generic[M]):
    """A claimed lane: its rows in order, oldest first."""

    key: tuple[Any, ...]
    group: Hashable
    rows: list[M]


@dataclass
class Round(Generic[M]):
    """Lanes of one group, claimed together, worked by one thread in order, settled together."""

    group: Hashable
    lanes: list[Lane[M]]
    #: The claim's time (the worker's clock), and the monotonic time after
    #: which no new request may start: the lease must outlive the last one.
    claimed_at: dt.datetime
    deadline: float
    #: Each row's due time before the claim moved it: handing a row back restores it.
    due: dict[Any, dt.datetime] = field(default_factory=dict)

    def rows(self) -> list[M]:
        return [r for lane in self.lanes for r in lane.rows]


@dataclass(frozen=True)
class Done:
    """Finish a pending row in ``state`` (final), with ``error`` as its reason."""

    pk: Any
    state: str
    error: str = ""
    attempted: bool = True  # the row was tried (an attempt is counted)
    values: tuple[tuple[str, Any], ...] = ()  # the kind's own columns, as (attname, value)


@dataclass(frozen=True)
class Retry:
    """Keep a pending row, due again at ``at`` (its lane waits behind it)."""

    pk: Any
    at: dt.datetime
    error: str = ""
    attempted: bool = True
    values: tuple[tuple[str, Any], ...] = ()


def values(**kwargs: Any) -> tuple[tuple[str, Any], ...]:
    """The kind's own columns of a ``Done`` or ``Retry``."""
    return tuple(sorted(kwargs.items()))


def retry_delay(attempts: int, *, base: float, cap: float) -> dt.timedelta:
    """The wait before the next attempt after ``attempts`` failed ones: exponential, half of it random."""
    return dt.timedelta(seconds=backoff(attempts, base=base, cap=cap))


class Queue(Generic[M]):
    """A table of jobs, and which of its columns play which part (see the module docstring).

    ``owner`` is the column naming a lease's holder; None for a queue whose
    claims hold row locks in the caller's transaction instead (timers).
    ``lease_until`` is a lease column the previous release reads (kept
    written while both may run). ``attempt_on_claim`` counts an attempt
    when a row is claimed rather than when it is finished, so a worker that
    dies mid-attempt has it counted.
    """

    def __init__(
        self,
        name: str,
        model: type[M],
        *,
        channel: str,
        due: str = "due_at",
        error: str = "last_error",
        error_limit: int = 2000,
        finished: str = "finished_at",
        lane: tuple[str, ...] = (),
        group: str | None = None,
        owner: str | None = "lease_owner",
        lease_until: str | None = None,
        attempt_on_claim: bool = False,
    ) -> None:
        self.name = name
        self.model = model
        self.channel = channel
        self.due, self.error, self.error_limit, self.finished = due, error, error_limit, finished
        self.lane, self.group, self.owner, self.lease_until = lane, group, owner, lease_until
        self.attempt_on_claim = attempt_on_claim
        #: Rows were queued in this process (notified after their commit).
        self.signal = wakeup.Signal()
        self._notifier = wakeup.CrossProcessNotifier(channel)
        self._described: Table | None = None

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    # -- waking -------------------------------------------------------------------------------

    def wake(self) -> None:
        """Rows were queued: wake this process's workers, and other processes' (a hint)."""
        self.signal.notify()
        self._notifier.request()

    def wake_on_commit(self) -> None:
        """``wake`` once the caller's transaction commits (at once outside one)."""
        transaction.on_commit(self.wake)

    # -- reading ------------------------------------------------------------------------------

    def pending(self) -> models.QuerySet[M]:
        return self.model._default_manager.filter(state=PENDING)

    def next_due(self, now: dt.datetime) -> dt.datetime | None:
        """The earliest time a pending row falls due after ``now``: a delay, a retry, a hold, a lease that lapses.

        Rows already due are not counted: they are claimed, or wait behind
        the head of their lane, which is counted.
        """
        found: dt.datetime | None = self.pending().filter(**{f"{self.due}__gt": now}).aggregate(at=Min(self.due))["at"]
        return found

    # -- claiming -----------------------------------------------------------------------------

    def claim(
        self,
        now: dt.datetime,
        *,
        owner: str | None,
        lease: float | None,
        rounds: int = 1,
        lanes: int = 1,
        per_lane: int | None = 1,
        busy: Mapping[Hashable, int] | None = None,
        per_group: int | None = None,
        where: Q | None = None,
        related: Sequence[str] = (),
    ) -> list[Round[M]]:
        """Claim due lanes for up to ``rounds`` rounds of up to ``lanes`` lanes each, oldest due first.

        A round holds lanes of one group. ``busy`` counts the rounds of each
        group this process is working on already, and no group gets more
        than ``per_group`` (None: no limit). ``per_lane`` caps the rows taken
        from one lane (None: every due row right behind its head). With
        ``lease`` (seconds) the rows are leased to ``owner`` and handed back
        by ``settle`` or ``release``; without, they stay locked by the
        caller's transaction, which must be open.
        """
        busy = busy or {}
        allowance: dict[Hashable, int] = {}

        def allowed(group: Hashable) -> int:
            if group not in allowance:
                cap = rounds if per_group is None else min(rounds, per_group - busy.get(group, 0))
                allowance[group] = max(0, cap)
            return allowance[group]

        due = self.pending().filter(**{f"{self.due}__lte": now})
        if where is not None:
            due = due.filter(where)
        if self.lane:
            earlier = self.pending().filter(**{c: OuterRef(c) for c in self.lane}, pk__lt=OuterRef("pk"))
            due = due.filter(~Exists(earlier))
        if self.group is not None and per_group is not None:
            full = [g for g in busy if allowed(g) <= 0]
            if full:
                due = due.exclude(**{f"{self.group}__in": full})
        if related:
            due = due.select_related(*related)
        scan = min(1000, rounds * lanes * (4 if self.group is not None else 1))
        with transaction.atomic(savepoint=False):
            # Only the queue's rows are locked, not the rows joined to them.
            locked = due.select_for_update(skip_locked=True, of=("self",) if related else ())
            heads = list(locked.order_by(self.due, "pk")[:scan])
            chosen = self._deal(heads, rounds, lanes, allowed)
            if not chosen:
                return []
            lines = list(zip(chosen.values(), self._follow(list(chosen), now, per_lane, related), strict=True))
            rows = [r for _, lane in lines for r in lane.rows]
            original = {r.pk: getattr(r, self.due) for r in rows}
            if lease is not None:
                leased = self._lease(rows, owner or "", now + dt.timedelta(seconds=lease))
                if len(leased) < len(rows):
                    # A row was finished meanwhile (its endpoint disabled, its device
                    # deleted): a lane goes up to it, and what is behind it is handed back.
                    strays: dict[Any, dt.datetime] = {}
                    for _, lane in lines:
                        kept = _until_missing(lane.rows, leased)
                        strays.update({r.pk: original[r.pk] for r in lane.rows[len(kept) :] if r.pk in leased})
                        lane.rows = kept
                    self._release(owner or "", strays)
        deadline = time.monotonic() + (lease if lease is not None else math.inf)
        out: dict[int, Round[M]] = {}
        for index, lane in lines:
            if not lane.rows:
                continue
            found = out.get(index)
            if found is None:
                found = out[index] = Round(lane.group, [], now, deadline)
            found.lanes.append(lane)
            found.due.update({r.pk: original[r.pk] for r in lane.rows})
        return list(out.values())

    def _key(self, row: M) -> tuple[Any, ...]:
        return tuple(getattr(row, c) for c in self.lane) if self.lane else (row.pk,)

    def _group_of(self, row: M) -> Hashable:
        return getattr(row, self.group) if self.group is not None else None

    def _deal(self, heads: list[M], rounds: int, lanes: int, allowed: Any) -> dict[M, int]:
        """Deal the heads into rounds: one group per round, at most ``lanes`` each, spread
        over as many rounds as the group may have (more threads at once)."""
        by_group: dict[Hashable, list[M]] = {}
        for head in heads:
            by_group.setdefault(self._group_of(head), []).append(head)
        chosen: dict[M, int] = {}
        next_round = 0
        for group, members in by_group.items():
            count = min(allowed(group), rounds - next_round, math.ceil(len(members) / lanes))
            if count <= 0:
                continue
            for i, head in enumerate(members[: count * lanes]):
                chosen[head] = next_round + i % count
            next_round += count
            if next_round >= rounds:
                break
        return chosen

    def _follow(self, heads: list[M], now: dt.datetime, per_lane: int | None, related: Sequence[str]) -> list[Lane[M]]:
        """Each head's lane: the head, then the due rows right behind it."""
        lines = [Lane(self._key(h), self._group_of(h), [h]) for h in heads]
        if not self.lane or per_lane == 1:
            return lines
        by_key = {lane.key: lane for lane in lines}
        behind = self.pending().filter(_any_of([dict(zip(self.lane, key, strict=True)) for key in by_key]))
        behind = behind.exclude(pk__in=[h.pk for h in heads])
        if related:
            behind = behind.select_related(*related)
        blocked: set[tuple[Any, ...]] = set()
        for row in behind.order_by("pk"):
            key = self._key(row)
            lane = by_key[key]
            if key in blocked:
                continue
            if getattr(row, self.due) > now or (per_lane is not None and len(lane.rows) >= per_lane):
                blocked.add(key)  # a row not due holds back the rest of its lane
                continue
            lane.rows.append(row)
        return lines

    def _lease(self, rows: list[M], owner: str, until: dt.datetime) -> set[Any]:
        """Lease ``rows`` to ``owner`` until ``until``: the rows that were still pending."""
        assert self.owner is not None, f"{self.name} rows are not leased"
        changes: dict[str, Any] = {self.due: until, self.owner: owner}
        if self.lease_until is not None:
            changes[self.lease_until] = until
        if self.attempt_on_claim:
            changes["attempts"] = models.F("attempts") + 1
        pks = [r.pk for r in rows]
        count = self.pending().filter(pk__in=pks).update(**changes)
        leased = set(pks) if count == len(pks) else set(
            self.pending().filter(pk__in=pks, **{self.owner: owner}).values_list("pk", flat=True)
        )
        for row in rows:  # the instances as the claim left them, but for their due time (kept for release)
            if row.pk in leased:
                setattr(row, self.owner, owner)
                if self.attempt_on_claim:
                    row.attempts += 1  # type: ignore[attr-defined]
        return leased

    # -- finishing ----------------------------------------------------------------------------

    def settle(
        self,
        now: dt.datetime,
        *,
        owner: str | None = None,
        done: Iterable[Done] = (),
        retry: Iterable[Retry] = (),
        release: Mapping[Any, dt.datetime] | None = None,
    ) -> set[Any]:
        """Finish ``done``, reschedule ``retry`` and hand back ``release`` (row -> its due time
        before the claim), in one transaction; returns the rows this call finished.

        Every change is conditional on ``pending``: a row someone else
        finished meanwhile stays as they left it. Handing back is also
        conditional on the lease still being ``owner``'s.
        """
        finished: set[Any] = set()
        done, retry = list(done), list(retry)
        if not done and not retry and not release:
            return finished
        with transaction.atomic(savepoint=False):
            groups: dict[tuple[Any, ...], list[Any]] = {}
            for d in done:
                groups.setdefault(("done", d.state, d.error[: self.error_limit], d.attempted, d.values), []).append(d.pk)
            for r in retry:
                groups.setdefault(("retry", r.at, r.error[: self.error_limit], r.attempted, r.values), []).append(r.pk)
            for (kind, target, error, attempted, extra), pks in groups.items():
                changes: dict[str, Any] = {self.error: error, **dict(extra)}
                if kind == "done":
                    changes.update({"state": target, self.finished: now})
                else:
                    changes[self.due] = target
                changed = self._update(pks, changes, attempted=attempted and not self.attempt_on_claim)
                if kind == "done":
                    finished.update(changed)
            if release:
                self._release(owner, release)
        return finished

    def release(self, owner: str, due: Mapping[Any, dt.datetime]) -> None:
        """Hand rows back (row -> its due time before the claim) while they are still ``owner``'s."""
        if due:
            with transaction.atomic(savepoint=False):
                self._release(owner, due)

    def _release(self, owner: str | None, due: Mapping[Any, dt.datetime]) -> None:
        # Grouped by due time: rows queued together were due together.
        by_time: dict[dt.datetime, list[Any]] = {}
        for pk, at in due.items():
            by_time.setdefault(at, []).append(pk)
        for at, pks in by_time.items():
            self._update(pks, {self.due: at}, attempted=False, holder=owner)

    def release_owner(self, owner: str, now: dt.datetime) -> int:
        """Hand back whatever ``owner`` still holds, due at once (a worker stopping)."""
        if self.owner is None:
            return 0
        changes: dict[str, Any] = {self.due: now, self.owner: ""}
        if self.lease_until is not None:
            changes[self.lease_until] = None
        return self.pending().filter(**{self.owner: owner}).update(**changes)

    def _update(self, pks: list[Any], changes: dict[str, Any], *, attempted: bool, holder: str | None = None) -> list[Any]:
        """One UPDATE of pending rows ``pks``, ending their lease; the rows it changed.

        Plain SQL: it runs for every round, and the ORM's per-statement cost
        was a good part of a round (docs/benchmarks.md).
        """
        table = self._table()
        if self.owner is not None:
            changes = {**changes, self.owner: ""}
        if self.lease_until is not None:
            changes[self.lease_until] = None
        sets = [f'"{table.columns[a]}" = %s' for a in changes]
        params: list[Any] = [table.to_db(a, v) for a, v in changes.items()]
        if attempted:
            sets.append('"attempts" = "attempts" + 1')
        out: list[Any] = []
        for chunk in _chunks(pks, 1 << 30 if table.postgres else 500):
            among, keys = table.among(table.pk, chunk)
            among = among.replace("%b", "%s")
            where = f"{among} AND \"state\" = 'pending'"
            extra: list[Any] = []
            if holder is not None and self.owner is not None:
                where += f' AND "{table.columns[self.owner]}" = %s'
                extra.append(holder)
            sql = f'UPDATE "{table.name}" SET {", ".join(sets)} WHERE {where} RETURNING "{table.pk_column}"'
            with connection.cursor() as cursor:
                cursor.execute(sql, params + keys + extra)
                out += [row[0] for row in cursor.fetchall()]
        return out

    def _table(self) -> Table:
        if self._described is None:
            self._described = Table(self.model)
        return self._described

    # -- housekeeping ---------------------------------------------------------------------------

    def purge(self, cutoff: dt.datetime) -> int:
        """Delete finished rows older than ``cutoff``."""
        deleted, _ = (
            self.model._default_manager.exclude(state=PENDING).filter(**{f"{self.finished}__lt": cutoff}).delete()
        )
        return deleted


def _any_of(conditions: list[dict[str, Any]]) -> Q:
    out = Q()
    for condition in conditions:
        out |= Q(**condition)
    return out


def _until_missing(rows: list[M], kept: set[Any]) -> list[M]:
    """A lane's rows up to the first one not leased (the rest must wait behind it)."""
    out = []
    for row in rows:
        if row.pk not in kept:
            break
        out.append(row)
    return out


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
