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
* **Claim.** On PostgreSQL one statement locks due rows with ``SELECT ...
  FOR UPDATE SKIP LOCKED``, picks each group's share of them and leases
  them: any number of workers in any number of processes take different
  rows and never wait for each other. SQLite has one writer at a time and
  ignores FOR UPDATE; the claim's write transaction is exclusive, and its
  conditional UPDATE is the claim.
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

import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.db import connection, models, transaction
from django.db.models import Q

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
        t = self._table()
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT MIN("{t.columns[self.due]}") FROM "{t.name}" '
                f'WHERE "state" = \'pending\' AND "{t.columns[self.due]}" > %(now)s',
                {"now": t.to_db(self.due, now)},
            )
            found = cursor.fetchone()[0]
        return t.from_db(self.due, found) if found is not None else None

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
        where: str = "",
        related: Sequence[str] = (),
    ) -> list[Round[M]]:
        """Claim due lanes for up to ``rounds`` rounds of up to ``lanes`` lanes each, oldest due first.

        A round holds lanes of one group. ``busy`` counts the rounds of each
        group this process is working on already, and no group gets more
        than ``per_group`` (None: no limit). ``per_lane`` caps the rows taken
        from one lane (None: every due row right behind its head).
        ``where`` is a further SQL condition on the candidate row ``d``
        (``%(now)s`` is the claim's time). With ``lease`` (seconds) the rows
        are leased to ``owner`` and handed back by ``settle`` or
        ``release``; without, they stay locked by the caller's transaction,
        which must be open.

        Plain SQL: a claim runs for every round, and compiling its query
        through the ORM cost more than the database took to answer it.
        """
        busy = busy or {}
        given: dict[Hashable, int] = {}  # rounds dealt to each group by this claim

        def room(group: Hashable) -> int:
            cap = rounds if per_group is None else per_group - busy.get(group, 0)
            return max(0, cap - given.get(group, 0))

        capped = self.group is not None and per_group is not None
        full = {g for g in busy if room(g) <= 0} if capped else set()
        until = now + dt.timedelta(seconds=lease) if lease is not None else None
        # Claimed heads, oldest due first, and their due times before the claim.
        rows: list[M] = []
        original: dict[Any, dt.datetime] = {}
        for _ in range(8):  # each look deals a round or rules a group out; a few suffice
            want = (rounds - sum(given.values())) * lanes
            if want <= 0:
                break
            rooms = {g: room(g) for g in {*busy, *given} if room(g) > 0} if capped else {}
            found = self._take(now, until, owner, want=want, lanes=lanes, full=full, rooms=rooms,
                               default_room=room(object()) if capped else rounds, where=where)
            if not found:
                break
            rows += [row for row, _ in found]
            original.update({row.pk: at for row, at in found})
            counts: dict[Hashable, int] = {}
            for row, _ in found:
                group = self._group_of(row)
                counts[group] = counts.get(group, 0) + 1
            left_behind = False
            for group, count in counts.items():
                given[group] = given.get(group, 0) + math.ceil(count / lanes)
                if capped and room(group) <= 0:
                    full.add(group)  # it may have more due: look again past it
                    left_behind = True
            if len(found) >= want or not left_behind:
                break
        rows = self._attach(rows, related)
        if not rows:
            return []

        def share(group: Hashable) -> int:
            return rounds if per_group is None else min(rounds, per_group - busy.get(group, 0))

        rounds_of = self._deal(rows, rounds, lanes, room=share)
        dealt = {row.pk for lane_rows in rounds_of for row in lane_rows}
        if until is not None and len(dealt) < len(rows):
            self.release(owner or "", {r.pk: original[r.pk] for r in rows if r.pk not in dealt})
        deadline = time.monotonic() + (lease if lease is not None else math.inf)
        out: list[Round[M]] = []
        for members in rounds_of:
            found_round: Round[M] = Round(self._group_of(members[0]), [], now, deadline)
            for head in members:
                lane = Lane(self._key(head), found_round.group, [head])
                found_round.lanes.append(lane)
            out.append(found_round)
        lanes_all = [lane for r in out for lane in r.lanes]
        if self.lane and per_lane != 1:
            original.update(self._follow(lanes_all, now, until, owner, per_lane, related))
        for r in out:
            r.due.update({row.pk: original[row.pk] for row in r.rows()})
        return out

    def _take(
        self, now: dt.datetime, until: dt.datetime | None, owner: str | None, *, want: int, lanes: int,
        full: set[Hashable], rooms: dict[Hashable, int], default_room: int, where: str,
    ) -> list[tuple[M, dt.datetime]]:
        """Lease (or, without ``until``, lock) up to ``want`` due heads, at most a group's room
        in lanes, oldest due first; each with its due time before the claim (the instance
        shows it too; the lease's end is in the database)."""
        t = self._table()
        pk, due = f'"{t.pk_column}"', f'"{t.columns[self.due]}"'
        group = f'd."{t.columns[self.group]}"' if self.group is not None else "NULL"
        params: dict[str, Any] = {"now": t.to_db(self.due, now), "want": want}
        conditions = ["d.\"state\" = 'pending'", f"d.{due} <= %(now)s"]
        if self.lane:
            same = " AND ".join(f'e."{t.columns[c]}" = d."{t.columns[c]}"' for c in self.lane)
            conditions.append(
                f'NOT EXISTS (SELECT 1 FROM "{t.name}" e WHERE e."state" = \'pending\' AND {same} AND e.{pk} < d.{pk})'
            )
        if full and self.group is not None:
            conditions.append(f"NOT ({self._among('d', self.group, list(full), 'full', params)})")
        if where:
            conditions.append(f"({where})")
        lock = " FOR UPDATE SKIP LOCKED" if t.postgres else ""  # d alone: the subqueries lock nothing
        candidates = (
            f'SELECT d.{pk} AS id, {group} AS grp, d.{due} AS due FROM "{t.name}" d WHERE {" AND ".join(conditions)} '
            f"ORDER BY d.{due}, d.{pk} LIMIT %(want)s{lock}"
        )
        # At most a group's room, in lanes, of each group's oldest heads.
        room_of = "%(room)s"
        if rooms:
            assert self.group is not None
            room_of = "CASE " + "".join(f"WHEN c.grp = %(g{i})s THEN %(r{i})s " for i in range(len(rooms))) + \
                "ELSE %(room)s END"
            for i, (g, r) in enumerate(rooms.items()):
                params[f"g{i}"], params[f"r{i}"] = t.to_db(self.group, g), r
        params["room"], params["lanes"] = default_room, lanes
        picked = (
            f"SELECT id, due FROM (SELECT c.id, c.due, c.grp, ({room_of}) AS room, "
            f"row_number() OVER (PARTITION BY c.grp ORDER BY c.due, c.id) AS n FROM c) ranked "
            f"WHERE n <= room * %(lanes)s"
        )
        columns = ", ".join(f'"{t.name}"."{t.columns[a]}"' for a in t.attnames)
        if until is None:  # locked by the caller's transaction, not leased
            sql = (
                f'WITH c AS ({candidates}), p AS ({picked}) SELECT p.due, {columns} FROM p '
                f'JOIN "{t.name}" ON "{t.name}".{pk} = p.id ORDER BY p.due, p.id'
            )
            rows = self._fetch(sql, params)
        else:
            assign = self._leasing(until, owner, params)
            if t.postgres:
                # One statement: candidates locked, the group's share picked, leased.
                sql = (
                    f'WITH c AS ({candidates}), p AS ({picked}) UPDATE "{t.name}" SET {assign} FROM p '
                    f'WHERE "{t.name}".{pk} = p.id AND "{t.name}"."state" = \'pending\' RETURNING p.due, {columns}'
                )
                rows = self._fetch(sql, params)
            else:
                # SQLite: the claim's write transaction is exclusive; the conditional UPDATE is the claim.
                with transaction.atomic(savepoint=False):
                    picks = self._fetch(f"WITH c AS ({candidates}) {picked}", params)
                    rows = []
                    if picks:
                        keys: dict[str, Any] = {}
                        among = self._among(None, t.pk, [r[0] for r in picks], "pk", keys)
                        due_of = {r[0]: r[1] for r in picks}
                        key_at = t.attnames.index(t.pk)
                        rows = [
                            (due_of[r[key_at]], *r) for r in self._fetch(
                                f'UPDATE "{t.name}" SET {assign} WHERE {among} AND "state" = \'pending\' '
                                f"RETURNING {columns}", {**params, **keys},
                            )
                        ]
        out = []
        for at, *stored in rows:
            row = self.model.from_db(
                connection.alias, t.attnames, [t.from_db(a, v) for a, v in zip(t.attnames, stored, strict=True)]
            )
            before = t.from_db(self.due, at)
            setattr(row, self.due, before)  # as it was: the lease's end is in the database
            out.append((row, before))
        out.sort(key=lambda found: (found[1], found[0].pk))
        return out

    def _leasing(self, until: dt.datetime, owner: str | None, params: dict[str, Any]) -> str:
        """The SET list of an UPDATE that leases rows to ``owner`` until ``until`` (its values into ``params``)."""
        assert self.owner is not None and owner is not None, f"{self.name} rows are not leased"
        t = self._table()
        sets: dict[str, Any] = {self.due: until, self.owner: owner}
        if self.lease_until is not None:
            sets[self.lease_until] = until
        params.update({f"set_{a}": t.to_db(a, v) for a, v in sets.items()})
        assign = ", ".join(f'"{t.columns[a]}" = %(set_{a})s' for a in sets)
        if self.attempt_on_claim:
            assign += ', "attempts" = "attempts" + 1'
        return assign

    def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def _among(self, alias: str | None, attname: str, values: list[Any], name: str, params: dict[str, Any]) -> str:
        """``attname`` is one of ``values``, with named parameters added to ``params``."""
        t = self._table()
        column = f'{alias + "." if alias else ""}"{t.columns[attname]}"'
        converted = [t.to_db(attname, v) for v in values]
        if t.postgres:
            params[name] = converted
            return f"{column} = ANY(%({name})s::{t.types[attname]}[])"
        for i, v in enumerate(converted):
            params[f"{name}{i}"] = v
        return f"{column} IN ({', '.join(f'%({name}{i})s' for i in range(len(converted)))})"

    def _attach(self, rows: list[M], related: Sequence[str]) -> list[M]:
        """Give claimed rows the rows their foreign keys ``related`` name: one query per key,
        however many rows (a round's rows share a few endpoints). A row whose target was
        deleted since is gone with it (the delete cascades): it is left out."""
        for name in related:
            field = self.model._meta.get_field(name)
            target = field.related_model
            assert isinstance(field, models.ForeignKey) and target is not None and not isinstance(target, str)
            found = target._default_manager.in_bulk({getattr(r, field.attname) for r in rows})
            rows = [r for r in rows if getattr(r, field.attname) in found]
            for row in rows:
                setattr(row, name, found[getattr(row, field.attname)])
        return rows

    def _key(self, row: M) -> tuple[Any, ...]:
        return tuple(getattr(row, c) for c in self.lane) if self.lane else (row.pk,)

    def _group_of(self, row: M) -> Hashable:
        return getattr(row, self.group) if self.group is not None else None

    def _deal(self, heads: list[M], rounds: int, lanes: int, *, room: Callable[[Hashable], int]) -> list[list[M]]:
        """Deal heads into rounds: one group per round, at most ``lanes`` each, spread over
        as many rounds as the group has room for (more threads at once)."""
        by_group: dict[Hashable, list[M]] = {}
        for head in heads:
            by_group.setdefault(self._group_of(head), []).append(head)
        out: list[list[M]] = []
        for group, members in by_group.items():
            count = min(room(group), rounds - len(out), math.ceil(len(members) / lanes))
            if count <= 0:
                continue
            dealt: list[list[M]] = [[] for _ in range(count)]
            for i, head in enumerate(members[: count * lanes]):
                dealt[i % count].append(head)
            out += dealt
            if len(out) >= rounds:
                break
        return out

    def _follow(
        self, lanes: list[Lane[M]], now: dt.datetime, until: dt.datetime | None, owner: str | None,
        per_lane: int | None, related: Sequence[str],
    ) -> dict[Any, dt.datetime]:
        """Add to each claimed lane the due rows right behind its head, leased with it; their
        due times before the claim.

        Nobody else can claim them meanwhile (their head is leased), and a
        row finished or leased by someone else since stops its lane there.
        """
        if not lanes:
            return {}
        by_key = {lane.key: lane for lane in lanes}
        if len(self.lane) == 1:
            behind = self.pending().filter(**{f"{self.lane[0]}__in": [key[0] for key in by_key]})
        else:
            behind = self.pending().filter(_any_of([dict(zip(self.lane, key, strict=True)) for key in by_key]))
        behind = behind.exclude(pk__in=[lane.rows[0].pk for lane in lanes])
        if related:
            behind = behind.select_related(*related)
        blocked: set[tuple[Any, ...]] = set()
        taken: list[M] = []
        for row in behind.order_by("pk"):
            key = self._key(row)
            lane = by_key[key]
            if key in blocked:
                continue
            if getattr(row, self.due) > now or (per_lane is not None and len(lane.rows) >= per_lane):
                blocked.add(key)  # a row not due holds back the rest of its lane
                continue
            lane.rows.append(row)
            taken.append(row)
        original = {row.pk: getattr(row, self.due) for row in taken}
        if until is None or not taken:
            return original
        t = self._table()
        params: dict[str, Any] = {"now": t.to_db(self.due, now)}
        assign = self._leasing(until, owner, params)
        among = self._among(None, t.pk, [r.pk for r in taken], "pk", params)
        leased = {
            r[0] for r in self._fetch(
                f'UPDATE "{t.name}" SET {assign} WHERE {among} AND "state" = \'pending\' '
                f'AND "{t.columns[self.due]}" <= %(now)s RETURNING "{t.pk_column}"', params,
            )
        }
        if len(leased) < len(taken):
            # A row was finished or leased by someone else since: its lane stops
            # there, and what this claim leased behind it is handed back.
            strays: dict[Any, dt.datetime] = {}
            for lane in lanes:
                kept = [lane.rows[0], *_until_missing(lane.rows[1:], leased)]
                strays.update({r.pk: original[r.pk] for r in lane.rows[len(kept) :] if r.pk in leased})
                lane.rows = kept
            self.release(owner or "", strays)
        return original

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
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for d in done:
            groups.setdefault(("done", d.state, d.error[: self.error_limit], d.attempted, d.values), []).append(d.pk)
        for r in retry:
            groups.setdefault(("retry", r.at, r.error[: self.error_limit], r.attempted, r.values), []).append(r.pk)
        statements: list[tuple[str, dict[str, Any], bool]] = []  # (sql, params, finishes rows)
        for (kind, target, error, attempted, extra), pks in groups.items():
            changes: dict[str, Any] = {self.error: error, **dict(extra)}
            if kind == "done":
                changes.update({"state": target, self.finished: now})
            else:
                changes[self.due] = target
            statements += [
                (sql, params, kind == "done")
                for sql, params in self._updates(pks, changes, attempted=attempted and not self.attempt_on_claim)
            ]
        if release:
            statements += [(sql, params, False) for sql, params in self._releases(owner, release)]
        # One statement needs no transaction of its own (a round trip each for BEGIN and COMMIT).
        with transaction.atomic(savepoint=False) if len(statements) > 1 else contextlib.nullcontext():
            for sql, params, finishing in statements:
                changed = [row[0] for row in self._fetch(sql, params)]
                if finishing:
                    finished.update(changed)
        return finished

    def release(self, owner: str, due: Mapping[Any, dt.datetime]) -> None:
        """Hand rows back (row -> its due time before the claim) while they are still ``owner``'s."""
        for sql, params in self._releases(owner, due):
            self._fetch(sql, params)

    def release_owner(self, owner: str, now: dt.datetime) -> int:
        """Hand back whatever ``owner`` still holds, due at once (a worker stopping)."""
        if self.owner is None:
            return 0
        changes: dict[str, Any] = {self.due: now, self.owner: ""}
        if self.lease_until is not None:
            changes[self.lease_until] = None
        return self.pending().filter(**{self.owner: owner}).update(**changes)

    def _ending_lease(self, changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(changes)
        if self.owner is not None:
            out[self.owner] = ""
        if self.lease_until is not None:
            out[self.lease_until] = None
        return out

    def _updates(self, pks: list[Any], changes: dict[str, Any], *, attempted: bool) -> list[tuple[str, dict[str, Any]]]:
        """UPDATEs of pending rows ``pks`` that end their lease, returning the rows changed.

        Plain SQL: they run for every round, and the ORM's per-statement
        cost was a good part of a round.
        """
        t = self._table()
        changes = self._ending_lease(changes)
        sets = [f'"{t.columns[a]}" = %(set_{a})s' for a in changes]
        if attempted:
            sets.append('"attempts" = "attempts" + 1')
        out = []
        for chunk in _chunks(pks, 1 << 30 if t.postgres else 500):
            params: dict[str, Any] = {f"set_{a}": t.to_db(a, v) for a, v in changes.items()}
            among = self._among(None, t.pk, chunk, "pk", params)
            out.append((
                f'UPDATE "{t.name}" SET {", ".join(sets)} WHERE {among} AND "state" = \'pending\' '
                f'RETURNING "{t.pk_column}"', params,
            ))
        return out

    def _releases(self, owner: str | None, due: Mapping[Any, dt.datetime]) -> list[tuple[str, dict[str, Any]]]:
        """UPDATEs putting rows back as they were before the claim (each its own due time),
        while their lease is still ``owner``'s."""
        if not due:
            return []
        t = self._table()
        changes = self._ending_lease({})
        sets = [f'"{t.columns[a]}" = %(set_{a})s' for a in changes]
        out = []
        for chunk in _chunks(list(due), 1 << 30 if t.postgres else 200):
            params: dict[str, Any] = {f"set_{a}": t.to_db(a, v) for a, v in changes.items()}
            among = self._among(None, t.pk, chunk, "pk", params)
            when = " ".join(f"WHEN %(k{i})s THEN %(d{i})s" for i in range(len(chunk)))
            for i, key in enumerate(chunk):
                params[f"k{i}"], params[f"d{i}"] = t.to_db(t.pk, key), t.to_db(self.due, due[key])
            cast = f"::{t.types[self.due]}" if t.postgres else ""
            where = f'{among} AND "state" = \'pending\''
            if self.owner is not None and owner is not None:
                where += f' AND "{t.columns[self.owner]}" = %(holder)s'
                params["holder"] = owner
            out.append((
                f'UPDATE "{t.name}" SET "{t.columns[self.due]}" = (CASE "{t.pk_column}" {when} END){cast}, '
                f'{", ".join(sets)} WHERE {where} RETURNING "{t.pk_column}"', params,
            ))
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
