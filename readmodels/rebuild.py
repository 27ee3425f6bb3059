"""Rebuilding read models from the log while everything keeps serving.

1. **Beside the live tables.** Fresh, empty copies of the chosen
   projections' tables are made where only this connection sees them: a
   schema of their own on PostgreSQL (same table and index names, found
   first through ``search_path``), TEMP tables on SQLite (which shadow the
   main ones for this connection). One pass over the log feeds every chosen
   projection up to the pipeline's checkpoint, through one unit of work that
   holds the rows in memory and writes them once (``HELD_ROWS`` bounds it).
   The indexes that enforce nothing are built after that write, over the
   full tables, and the tables are written side by side over connections of
   their own (``WRITERS``): PostgreSQL builds the search index of one while
   the other's rows go in. A second pass then replays what the pipeline
   did during that write. The live pipeline goes on meanwhile, writing the
   live tables.

   On PostgreSQL the bulk of that pass is split by customer over
   ``PROCESSES`` forked processes when the log is long enough
   (``PARALLEL_FROM`` events): process ``w`` of ``N`` folds, for each
   partition ``p`` of ``P``, the events of partition ``p + P*w`` of ``P*N``
   up to ``p``'s checkpoint, in log order, into the same new tables (every
   read-model row is one customer's, so the processes never write the same
   row), and copies its rows in. This process then builds the waiting
   indexes once, and goes on from those checkpoints as above, reading back
   the rows it needs. Python folds on one core per process: the fold, not
   the database, is most of a rebuild (docs/benchmarks.md).
2. **The swap.** One transaction locks the pipeline's checkpoint row (the
   live pipeline starts every batch by locking it, so it waits here, between
   two batches), then the live tables (a reader holding one longer than
   ``SWAP_LOCK_TIMEOUT_MS`` makes the attempt give up before it has applied
   anything, and try again), replays the few events the pipeline processed
   since, and puts the new tables in place of the old: on PostgreSQL by moving them
   between schemas, on SQLite by copying their rows over. Readers see the
   old tables until the commit and the new ones after it, never an empty or
   partial one; the checkpoint does not move, so the pipeline continues
   exactly where both the old and the new tables are.

Push outbox rows and published frames are not read models: a rebuild never
sends anything again.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import secrets
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, models, transaction

from eventstore import partitions
from eventstore.events import Cursor
from eventstore.store import REPLAY_APPLICATION_NAME, EventStore, mark_replay_transaction, replaying
from eventstore.tables import Row, Table
from eventstore.unit import Unit, copy_rows
from readmodels.projections import PIPELINE, Projection, ReadModels, with_needs

log = logging.getLogger(__name__)

#: How long the swap may wait for a lock before it gives up and tries again
#: (a long read holding a table must not make every other reader queue behind the swap).
SWAP_LOCK_TIMEOUT_MS = 3000
SWAP_ATTEMPTS = 20
#: Rows held in memory at most (about a kilobyte each); past it they are
#: written and dropped, and later batches read the ones they need back.
HELD_ROWS = int(os.environ.get("PARLEY_REBUILD_HELD_ROWS", "400000"))
#: Connections the rebuilt tables are written over at once (PostgreSQL): each
#: table's rows with COPY, then its indexes, on one of them.
WRITERS = int(os.environ.get("PARLEY_REBUILD_WRITERS", "2"))
#: Processes the bulk of the pass is folded in (PostgreSQL; 1: this one alone).
PROCESSES = int(os.environ.get("PARLEY_REBUILD_PROCESSES", str(min(2, os.cpu_count() or 1))))
#: Below this many events in the log the bulk stays in this process (a fork costs more than it saves).
PARALLEL_FROM = int(os.environ.get("PARLEY_REBUILD_PARALLEL_FROM", "20000"))


@dataclass(frozen=True)
class Rebuilt:
    name: str
    events: int  # events of its types the projection applied


def rebuild(projections: Sequence[Projection], *, batch_size: int = 5000) -> list[Rebuilt]:
    """Rebuild ``projections`` from the log (see the module docstring), with the
    projections they read (readmodels.projections.with_needs): rebuilding the
    badge rebuilds the unread set it counts."""
    engine = ReadModels([p for p in with_needs(projections) if p.rebuildable])
    shadow = _Shadow(engine.tables)
    counts = {p.name: 0 for p in engine.projections}
    # Where the bulk is folded decides the unit the pass starts with: here, one
    # that takes the new tables as empty (_fresh_unit); apart, the processes make
    # their own, and this one starts after them with a plain unit, which reads
    # back the rows they wrote.
    apart = _processes(shadow)
    unit = Unit(keep=True) if apart > 1 else _fresh_unit(shadow)
    replaying.active = True
    # The pass allocates millions of small objects and holds hundreds of
    # thousands of rows, none of them in reference cycles; the cyclic
    # collector would scan them over and over (a third of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        shadow.create()
        # Each partition up to its own checkpoint (one, unpartitioned): a
        # partition's rows are its customers', so partitions never meet.
        cursors = dict.fromkeys(partitions.all_partitions(), Cursor.start())

        def catch_up(unit: Unit) -> None:
            """Up to where the live pipeline is now (read again before every batch)."""
            for part in cursors:
                while True:
                    until = partitions.checkpoints(PIPELINE)[part]
                    if cursors[part] >= until:
                        break
                    cursors[part] = _fold_batch(engine, shadow, unit, cursors[part], until, batch_size, counts, part)

        if apart > 1:
            # The bulk, folded and written by processes of its own; this one goes on
            # from where they stopped, reading back the rows it needs.
            untils = partitions.checkpoints(PIPELINE)
            for name, n in _fold_apart(engine, shadow, untils, apart, batch_size).items():
                counts[name] += n
            cursors.update(untils)
            shadow.build_indexes()
        else:
            catch_up(unit)
            _flush(shadow, unit, apart=True)  # the bulk, written before the swap
        # What the pipeline did meanwhile, still without holding anything up, so
        # that the swap, which holds the pipeline and the readers, has little left.
        catch_up(unit)
        _flush(shadow, unit, apart=False)
        for attempt in range(SWAP_ATTEMPTS):
            applying = False
            try:
                with transaction.atomic():
                    shadow.use()
                    shadow.limit_lock_waits()
                    locked = _lock_pipeline()
                    # Every lock the swap needs before anything is applied: an attempt
                    # given up for a reader leaves the unit and the cursors as they were.
                    shadow.lock_live()
                    applying = True
                    for part, until in locked.items():
                        while cursors[part] < until:
                            cursors[part] = _replay(engine, unit, cursors[part], until, batch_size, counts, part)
                    unit.flush()
                    shadow.swap()
                break
            except OperationalError:
                if applying or attempt == SWAP_ATTEMPTS - 1:
                    raise
                log.info("rebuild: a reader held a table; trying the swap again")
                time.sleep(0.2)
    finally:
        replaying.active = False
        try:
            shadow.drop()
        finally:
            # The rows go now, freed by reference counting: left to the cyclic
            # collector, its first run would walk every one of them (half a second).
            del unit
            if collecting:
                gc.enable()
    return [Rebuilt(p.name, counts[p.name]) for p in engine.projections]


def _replay(
    engine: ReadModels, unit: Unit, cursor: Cursor, until: Cursor, size: int, counts: dict[str, int],
    partition: partitions.Partition,
) -> Cursor:
    """Feed one batch of (cursor, until] of ``partition`` to every projection; returns the new cursor."""
    part = partition if partition.count > 1 else None
    batch = EventStore().read_batch(cursor, size, types=engine.event_types, until=until, partition=part)
    if batch.events:
        engine.want(batch.events, unit)
        unit.load()
        for name, n in engine.apply(batch.events, unit).items():
            counts[name] += n
    return batch.end


def _fresh_unit(shadow: _Shadow) -> Unit:
    """A unit for the bulk of a pass, in this process or a forked one: the new tables
    start empty and only this pass writes them, so rows are held in memory (never
    read back) and written once, when enough changed or after the bulk, not once per batch."""
    unit = Unit(keep=True)
    for table in shadow.tables:
        unit.assume_empty(table)
    return unit


def _fold_batch(
    engine: ReadModels, shadow: _Shadow, unit: Unit, cursor: Cursor, until: Cursor, size: int, counts: dict[str, int],
    partition: partitions.Partition,
) -> Cursor:
    """``_replay`` into the new tables, in a transaction of its own; returns the new cursor.

    Past ``HELD_ROWS`` the rows are written and dropped, with the waiting
    indexes if they are not built yet: the later batches read back and delete
    by customer. A forked process has none to build (its parent builds them
    once every share is written), so its later batches read back without them.
    """
    with transaction.atomic():
        mark_replay_transaction()
        shadow.use()
        cursor = _replay(engine, unit, cursor, until, size, counts, partition)
        if unit.held() >= HELD_ROWS:
            unit.flush(copy_with=shadow.write_apart)
            unit.forget()
    return cursor


def _flush(shadow: _Shadow, unit: Unit, *, apart: bool) -> None:
    """Write what ``unit`` holds into the new tables, in a transaction of its own.

    ``apart``: the bulk, over ``write_apart``'s connections, with the waiting
    indexes; else the few rows a catch-up left after the bulk, on this
    connection: the indexes stand by then, and there is little to spread.
    """
    with transaction.atomic():
        mark_replay_transaction()
        shadow.use()
        unit.flush(copy_with=shadow.write_apart if apart else None)


def _processes(shadow: _Shadow) -> int:
    """How many processes fold the bulk: PROCESSES on PostgreSQL for a log of PARALLEL_FROM events or more, else 1."""
    if PROCESSES <= 1 or not shadow.postgres:
        return 1
    with connection.cursor() as c:
        # The last position is the number of events but for the gaps rolled-back appends left: near enough.
        c.execute("SELECT COALESCE(MAX(position), 0) FROM parley_events")
        (last,) = c.fetchone()
    return PROCESSES if last >= PARALLEL_FROM else 1


def _fold_apart(
    engine: ReadModels, shadow: _Shadow, untils: dict[partitions.Partition, Cursor], processes: int, size: int,
) -> dict[str, int]:
    """Fold every partition up to its cursor in ``untils`` in ``processes`` forked
    processes (see the module docstring); returns the events each projection applied.

    The processes are forked, so they start at once with everything this one
    loaded. A child must never use its parent's connections: this thread's is
    handed back first, and each child sets the inherited pool aside and opens
    its own (psycopg never closes a connection in a process other than the
    one that opened it, so the parent's stay intact). A child that fails
    makes the rebuild fail: the others are stopped, and the caller drops the
    new tables.
    """
    if connection.in_atomic_block:
        raise RuntimeError("a rebuild forks its folding processes outside any transaction")
    connection.close()
    context = multiprocessing.get_context("fork")
    pipes, children = [], []
    for index in range(processes):
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=_fold_share, args=(engine, shadow, untils, index, processes, size, send),
            name=f"rebuild-fold-{index}", daemon=True,
        )
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    counts = {p.name: 0 for p in engine.projections}
    pending: dict[Any, Any] = dict(zip(pipes, children, strict=True))
    done = False
    try:
        while pending:
            ready: Any
            for ready in wait(list(pending)):  # whichever answers first: a failure stops the rest at once
                child = pending.pop(ready)
                try:
                    outcome, value = ready.recv()
                except EOFError:
                    child.join()
                    raise RuntimeError(f"rebuild: {child.name} died (exit code {child.exitcode})") from None
                if outcome != "ok":
                    raise RuntimeError(f"rebuild: {child.name} failed:\n{value}")
                for name, n in value.items():
                    counts[name] += n
        done = True
    finally:
        for child in children:
            child.join(timeout=5 if done else 0)
            if child.is_alive():
                child.kill()
                child.join()
    return counts


#: See _fold_share.
_INHERITED_POOLS: list[Any] = []


def _fold_share(
    engine: ReadModels, shadow: _Shadow, untils: dict[partitions.Partition, Cursor], index: int, processes: int,
    size: int, send: Any,
) -> None:
    """In a forked process: fold share ``index`` of ``processes`` of every partition into the new tables, and write it."""
    try:
        # The parent's pool holds the parent's connections: set aside unused (never closed:
        # closing would say goodbye on the parent's sockets), so this process makes its own.
        pools = getattr(type(connections[DEFAULT_DB_ALIAS]), "_connection_pools", None)
        if pools:
            _INHERITED_POOLS.extend(pools.values())
            pools.clear()
        shadow.indexes = {}  # built by the parent once every share is written
        replaying.active = True
        unit = _fresh_unit(shadow)
        counts = {p.name: 0 for p in engine.projections}
        for part, until in untils.items():
            share = partitions.Partition(part.index + part.count * index, part.count * processes)
            cursor = Cursor.start()
            while cursor < until:
                cursor = _fold_batch(engine, shadow, unit, cursor, until, size, counts, share)
        _flush(shadow, unit, apart=True)
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()  # said goodbye to the server, not cut off by the exit
        send.send(("ok", counts))
    except BaseException:
        send.send(("error", traceback.format_exc()))


def _lock_pipeline() -> dict[partitions.Partition, Cursor]:
    """Lock every partition's checkpoint row of the pipeline until commit; returns their cursors."""
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    parts = partitions.all_partitions()
    names = {PIPELINE + p.suffix(): p for p in parts}
    found = dict.fromkeys(parts, Cursor.start())
    marks = ", ".join(["%s"] * len(names))
    with connection.cursor() as c:
        c.execute(
            f"SELECT name, tx, position FROM parley_checkpoints WHERE name IN ({marks}) ORDER BY name{lock}", list(names)
        )
        for name, tx, position in c.fetchall():
            found[names[name]] = Cursor(int(tx), int(position))
    return found


class _Shadow:
    """Empty copies of some tables that only this connection sees, and their swap."""

    def __init__(self, tables: Sequence[type[models.Model]]) -> None:
        self.tables = list(dict.fromkeys(tables))
        self.postgres = connection.vendor == "postgresql"
        suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.schema = f"parley_rebuild_{suffix}"
        self.old_schema = f"parley_replaced_{suffix}"
        self.created = False
        self.home = "public"
        #: Per table: the CREATE INDEX statements left for write_apart.
        self.indexes: dict[str, list[str]] = {}

    def _names(self) -> list[str]:
        return [t._meta.db_table for t in self.tables]

    def create(self) -> None:
        with connection.cursor() as c:
            if self.postgres:
                c.execute("SELECT current_schema()")
                self.home = c.fetchone()[0]
                c.execute(f'CREATE SCHEMA "{self.schema}"')
                self.created = True
                with transaction.atomic():
                    self.use()
                    with connection.schema_editor() as editor:
                        for table in self.tables:
                            editor.create_model(table)
                        # Indexes that enforce nothing wait for the rows (write_apart): one
                        # built over a full table sorts once instead of growing row by row.
                        # Keys and unique constraints stay (upserts and reads need them).
                        later = [sql for sql in map(str, editor.deferred_sql) if sql.startswith("CREATE INDEX ")]
                        editor.deferred_sql = [s for s in editor.deferred_sql if str(s) not in later]
                        # Not the second index Django gives a text key for prefix lookups,
                        # which no read model makes (migration readmodels 0013 dropped them).
                        like_index = editor._create_like_index_sql  # type: ignore[attr-defined]  # PostgreSQL's
                        prefix = {str(sql) for table in self.tables
                                  if (sql := like_index(table, table._meta.pk)) is not None}
                        later = [sql for sql in later if sql not in prefix]
                        for name in self._names():
                            self.indexes[name] = [sql for sql in later if f' ON "{name}" ' in sql]
                        assert sum(map(len, self.indexes.values())) == len(later), later
                return
            self.created = True
            for name in self._names():
                c.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [name])
                (ddl,) = c.fetchone()
                c.execute(ddl.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))

    def use(self) -> None:
        """Make the copies the ones this transaction's unqualified names mean."""
        if self.postgres:
            with connection.cursor() as c:
                c.execute(f'SET LOCAL search_path TO "{self.schema}", "{self.home}"')

    def write_apart(self, copies: list[tuple[Table, list[Row]]]) -> None:
        """Write the rebuilt tables' new rows and build their waiting indexes, the
        tables spread over ``WRITERS`` connections of their own, biggest first.

        Each table is one transaction of its own connection, marked as one
        that appends no events (readers of the log do not wait for it), and
        committed before this returns; the tables are this rebuild's alone
        until the swap, and dropped with the schema if the rebuild fails.
        """
        if not self.postgres:
            return  # SQLite's copies have no indexes and no COPY: the unit wrote the rows
        rows_of: dict[str, tuple[Table, list[Row]]] = {}
        for table, rows in copies:
            assert table.name in self._names(), f"{table.name} is not rebuilt here"
            rows_of[table.name] = (table, rows_of[table.name][1] + rows if table.name in rows_of else rows)
        jobs = [(*rows_of.get(name, (None, [])), self.indexes.pop(name, [])) for name in self._names()]
        jobs.sort(key=lambda job: -len(job[1]))  # the most rows first
        params = connection.get_connection_params()

        def write(job: tuple[Table | None, list[Row], list[str]]) -> None:
            table, rows, indexes = job
            if not rows and not indexes:
                return
            with psycopg.connect(**params) as conn:  # commits on leaving the block
                conn.execute("SELECT set_config('application_name', %s, true)", [REPLAY_APPLICATION_NAME])
                conn.execute(f'SET LOCAL search_path TO "{self.schema}", "{self.home}"')
                # One statement writes or indexes a whole table: no per-statement limit
                # meant for requests (PARLEY_DB_STATEMENT_TIMEOUT_MS) applies.
                conn.execute("SET LOCAL statement_timeout = 0")
                if table is not None:
                    copy_rows(conn, table, rows)
                for sql in indexes:
                    conn.execute(sql)

        with ThreadPoolExecutor(max(1, WRITERS), thread_name_prefix="rebuild-writer") as pool:
            for _ in pool.map(write, jobs):  # re-raises the first failure
                pass

    def build_indexes(self) -> None:
        """Build the waiting indexes of every table (after the rows were written apart), over ``WRITERS`` connections."""
        self.write_apart([])

    def lock_live(self) -> None:
        """Lock the live tables the swap replaces (waiting at most ``SWAP_LOCK_TIMEOUT_MS``)."""
        if self.postgres and self.tables:
            names = ", ".join(f'"{self.home}"."{name}"' for name in self._names())
            with connection.cursor() as c:
                c.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")

    def limit_lock_waits(self) -> None:
        if self.postgres:
            with connection.cursor() as c:
                c.execute(f"SET LOCAL lock_timeout = {SWAP_LOCK_TIMEOUT_MS}")

    def swap(self) -> None:
        with connection.cursor() as c:
            if self.postgres:
                c.execute(f'CREATE SCHEMA "{self.old_schema}"')
                for name in self._names():
                    c.execute(f'ALTER TABLE "{self.home}"."{name}" SET SCHEMA "{self.old_schema}"')
                    c.execute(f'ALTER TABLE "{self.schema}"."{name}" SET SCHEMA "{self.home}"')
                c.execute(f'DROP SCHEMA "{self.old_schema}" CASCADE')
                return
            for name in self._names():
                c.execute(f'DELETE FROM main."{name}"')
                c.execute(f'INSERT INTO main."{name}" SELECT * FROM temp."{name}"')

    def drop(self) -> None:
        if not self.created:
            return
        with connection.cursor() as c:
            if self.postgres:
                c.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            else:
                for name in self._names():
                    c.execute(f'DROP TABLE IF EXISTS temp."{name}"')
