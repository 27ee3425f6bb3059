"""Pipeline throughput: the read models applied in one process, and split in partitions over two.

On a log built as bench/replay.py builds it (BENCH_PIPELINE_EVENTS, default
60,000 events, every row with its customer's shard), in the same run:

* **a plain loop** (the floor of the work): the same folds
  (readmodels.folds) applied in memory over the whole log, read with one
  raw SQL cursor, the resulting rows written with one raw ``INSERT ... ON
  CONFLICT`` per table and page: what applying these rows costs without the
  pipeline's machinery (checkpoints, leases, the unit of work, the rows as
  of each event, frames);
* **the pipeline with a backlog**, as ``runworkers`` runs it: the whole log
  waiting, applied batch by batch with checkpoints, (a) unpartitioned in one
  process, (b) in two partitions in one process (two threads), (c) in two
  partitions over two processes;
* **the pipeline under a steady load**: an appender writes customer and
  agent messages through the command handler at a fixed rate for a while
  as the partitions apply them live (woken by appends, as the workers are),
  one process against two; the rate applied and the lag left at the end.

Figures are log events per second; the speed-up the partitions give on a
machine is its processes over its one (the target on 2 cores: 1.6x).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/pipeline.py
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    cpu_of,
    fmt_rate,
    load_note,
    loadavg,
    log,
    machine_cpu,
    scratch_database,
    setup_django,
)

TARGET_EVENTS = int(os.environ.get("BENCH_PIPELINE_EVENTS", "60000"))
STEADY_SECONDS = float(os.environ.get("BENCH_PIPELINE_STEADY_SECONDS", "15"))
STEADY_RATE = float(os.environ.get("BENCH_PIPELINE_STEADY_RATE", "400"))  # messages per second
PAGE = 500
READ_MODEL_TABLES = [
    "readmodels_directoryentry", "readmodels_timelinemessage", "readmodels_conversation", "readmodels_unread",
    "readmodels_badge", "readmodels_timelinenote", "readmodels_searchentry", "readmodels_eventrows",
    "readmodels_conversationlabel", "readmodels_agentunread", "readmodels_reportfact", "readmodels_reportcount",
    "readmodels_reportconversation",
]


def reset() -> None:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(f"TRUNCATE {', '.join(READ_MODEL_TABLES)}")
        c.execute("DELETE FROM parley_checkpoints")


# -- the plain loop ------------------------------------------------------------------------


def plain_loop(dbname: str) -> int:
    """The folds over the whole log, rows kept in dicts, written with raw SQL per page."""
    import json
    import uuid

    import psycopg

    from bench.common import conninfo
    from eventstore.events import Metadata, RecordedEvent, decode
    from readmodels import folds

    directory: dict[Any, Any] = {}
    timeline: dict[Any, Any] = {}
    conversations: dict[Any, Any] = {}
    unread: dict[Any, str] = {}
    badges: dict[Any, int] = {}
    n = 0
    with psycopg.connect(**conninfo(dbname)) as conn:
        with conn.cursor(name="log") as cur:
            cur.itersize = 5000
            cur.execute("SELECT position, tx, event_id, event_type, schema_version, data, recorded_at, shard "
                        "FROM parley_events ORDER BY tx, position")
            page: list[RecordedEvent] = []
            for position, tx, event_id, event_type, version, data, at, shard in cur:
                page.append(RecordedEvent(position, tx, "", 1, event_id, decode(event_type, version, json.loads(data)),
                                          Metadata(), at, shard))
                if len(page) == PAGE:
                    n += _apply(conn, page, folds, directory, timeline, conversations, unread, badges)
                    page = []
            if page:
                n += _apply(conn, page, folds, directory, timeline, conversations, unread, badges)
        conn.commit()
    del uuid
    return n


def _apply(conn: Any, page: list[Any], folds: Any, directory: dict[Any, Any], timeline: dict[Any, Any],
           conversations: dict[Any, Any], unread: dict[Any, str], badges: dict[Any, int]) -> int:
    changed: dict[str, dict[Any, Any]] = {"d": {}, "t": {}, "c": {}, "b": {}}
    for r in page:
        e = r.event
        if r.event_type in ("CustomerRegistered", "ContactDetailsChanged"):
            row = folds.directory(directory.get(e.customer_id), r)
            if row is not None:
                directory[e.customer_id] = changed["d"][e.customer_id] = row
            continue
        message = folds.timeline(timeline.get(e.message_id), r)
        timeline[e.message_id] = changed["t"][e.message_id] = message
        change = folds.unread_change(r)
        moved = {}
        if change is not None:
            if change.opens and change.message_id not in unread:
                unread[change.message_id] = change.reader
                moved[change.reader] = 1
            elif not change.opens and unread.get(change.message_id) == change.reader:
                del unread[change.message_id]
                moved[change.reader] = -1
        if moved.get(folds.CUSTOMER):
            badges[e.customer_id] = changed["b"][e.customer_id] = max(0, badges.get(e.customer_id, 0) + moved[folds.CUSTOMER])
        conv = folds.conversation(conversations.get(e.customer_id), r, message=message,
                                  agents_unread=moved.get(folds.AGENTS, 0))
        if conv is not None:
            conversations[e.customer_id] = changed["c"][e.customer_id] = conv
    from readmodels import models

    with conn.cursor() as c:
        for model, rows in ((models.DirectoryEntry, changed["d"].values()),
                            (models.TimelineMessage, changed["t"].values()),
                            (models.Conversation, changed["c"].values())):
            _upsert(c, model, list(rows))
        c.executemany(
            "INSERT INTO readmodels_badge (customer_id, unread, tx, position) VALUES (%s, %s, 0, 0) "
            "ON CONFLICT (customer_id) DO UPDATE SET unread = excluded.unread",
            list(changed["b"].items()))
    return len(page)


def _upsert(cursor: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """One raw ``INSERT ... ON CONFLICT DO UPDATE`` of these fold rows, over every column of the model's table
    (taken from the model, so a column a later read model adds is written here too)."""
    import json

    from django.db.models import JSONField

    if not rows:
        return
    fields = model._meta.concrete_fields
    key = model._meta.pk.column
    columns = [f.column for f in fields]
    sql = (f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
           f"ON CONFLICT ({key}) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in columns if c != key))
    cursor.executemany(sql, [[json.dumps(row[f.attname]) if isinstance(f, JSONField) else row[f.attname]
                              for f in fields] for row in rows])


# -- the pipeline in children ------------------------------------------------------------------


def _backlog_child(dbname: str, partitions: list[int], count: int, barrier: Any, out: Any) -> None:
    os.environ["PARLEY_PIPELINE_PARTITIONS"] = str(count)
    setup_django(dbname)
    from django.db import connection

    from eventstore.partitions import Partition
    from project.bootstrap import group

    runners = [group("pipeline", partition=Partition(p, count)) for p in partitions]
    done: list[int] = []

    def run(runner: Any) -> None:
        try:
            done.append(runner.catch_up())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    barrier.wait(timeout=120)
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((sum(done), time.monotonic() - start))


def backlog(dbname: str, layout: list[list[int]], count: int) -> tuple[int, float, float, float]:
    """Apply the whole log with ``count`` partitions, ``layout[i]`` the partitions process i runs:
    (events, seconds, cores the machine kept busy meanwhile, of which PostgreSQL's)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(layout) + 1)
    out = ctx.Queue()
    children = [ctx.Process(target=_backlog_child, args=(dbname, parts, count, barrier, out)) for parts in layout]
    for p in children:
        p.start()
    barrier.wait(timeout=180)
    busy, pg, start = machine_cpu()[0], cpu_of("postgres"), time.monotonic()
    results = [out.get(timeout=900) for _ in children]
    seconds = time.monotonic() - start
    busy, pg = (machine_cpu()[0] - busy) / seconds, (cpu_of("postgres") - pg) / seconds
    for p in children:
        p.join(timeout=30)
    return sum(n for n, _ in results), max(s for _, s in results), busy, pg


def _live_child(dbname: str, partitions: list[int], count: int, ready: Any, stop: Any, out: Any) -> None:
    os.environ["PARLEY_PIPELINE_PARTITIONS"] = str(count)
    setup_django(dbname)
    import asyncio

    from eventstore.partitions import Partition
    from project.bootstrap import group
    from workers.worker import Worker

    async def main() -> None:
        halt = asyncio.Event()
        runners = [group("pipeline", partition=Partition(p, count)) for p in partitions]
        tasks = [asyncio.create_task(Worker(r, poll_interval=0.5).run(halt)) for r in runners]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        halt.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    out.put(True)


def _append_messages(rate: float, seconds: float, customers: list[Any]) -> int:
    """Customer and agent messages through the command handler at ``rate`` per second (4 threads)."""
    import uuid

    from django.db import connection

    from chat.commands import Actor, SendMessage
    from chat.events import SenderKind
    from chat.handlers import send_message

    sent = [0] * 4
    deadline = time.monotonic() + seconds

    def run(k: int) -> None:
        i = 0
        start = time.monotonic()
        try:
            while time.monotonic() < deadline:
                c = customers[(k + 4 * i) % len(customers)]
                actor = Actor(SenderKind.CUSTOMER, str(c)) if i % 2 else Actor(SenderKind.AGENT, "1", "Grace")
                send_message(SendMessage(uuid.uuid4(), c, actor, f"steady {k}-{i}"))
                i += 1
                sent[k] += 1
                ahead = start + i * 4 / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent)


def steady(dbname: str, layout: list[list[int]], count: int, customers: list[Any]) -> dict[str, float]:
    from eventstore import partitions
    from eventstore.store import EventStore

    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in layout]
    children = [ctx.Process(target=_live_child, args=(dbname, parts, count, r, stop, out))
                for parts, r in zip(layout, readies, strict=True)]
    for p in children:
        p.start()
    for r in readies:
        r.wait(timeout=120)
    time.sleep(1.0)  # leases taken, caught up
    before = EventStore().head()
    start = time.monotonic()
    sent = _append_messages(STEADY_RATE, STEADY_SECONDS, customers)
    appended_for = time.monotonic() - start
    head = EventStore().head()
    lag_at_end = EventStore().count_after(partitions.watermark("pipeline", count))
    # Then until it has caught up: the rate it applied is what it kept up with.
    while partitions.watermark("pipeline", count) < head:
        time.sleep(0.02)
    caught_up = time.monotonic() - start
    stop.set()
    for _ in children:
        out.get(timeout=60)
    for p in children:
        p.join(timeout=30)
    events = EventStore().count_after(before) - EventStore().count_after(head)
    return {"sent": sent, "events": events, "append_rate": events / appended_for, "apply_rate": events / caught_up,
            "lag_at_end": lag_at_end, "seconds": caught_up}


def main() -> int:
    load_before = loadavg()
    log(f"pipeline throughput: a log of {TARGET_EVENTS:,} events")
    with scratch_database("pipeline") as dbname:
        import psycopg

        from bench.common import conninfo
        from bench.replay import build_log
        from customers.services import customer_register
        from eventstore.events import Cursor
        from eventstore.store import EventStore

        with psycopg.connect(**conninfo(dbname)) as conn:
            counts = build_log(conn, TARGET_EVENTS)
        total = sum(counts.values())
        assert EventStore().count_after(Cursor.start()) == total
        from django.db import connection

        connection.close()
        rows: list[list[str]] = []

        start = time.monotonic()
        n = plain_loop(dbname)
        plain_s = time.monotonic() - start
        assert n == total, (n, total)
        log(f"  plain loop: {fmt_rate(total / plain_s)} events/s")
        rows.append(["plain loop: folds in memory, raw SQL upserts per page (floor)", "1", "–", f"{plain_s:.2f}",
                     fmt_rate(total / plain_s), "–"])
        backlog_rates = {}
        backlog_busy: dict[str, float] = {}
        for label, layout, count in [
            ("pipeline, unpartitioned", [[0]], 1),
            ("pipeline, 2 partitions in 1 process (2 threads)", [[0, 1]], 2),
            ("pipeline, 2 partitions over 2 processes", [[0], [1]], 2),
        ]:
            reset()
            connection.close()
            n, secs, busy, pg = backlog(dbname, layout, count)
            assert n == total, (label, n, total)
            backlog_rates[label] = total / secs
            backlog_busy[label] = busy
            log(f"  {label}: {fmt_rate(total / secs)} events/s, {busy:.2f} cores busy ({pg:.2f} PostgreSQL)")
            rows.append([f"**{label}**", str(len(layout)), str(count), f"{secs:.2f}", fmt_rate(total / secs),
                         f"{busy:.2f} ({pg:.2f})"])

        customers = [customer_register(name=f"Steady {i}").customer.id for i in range(200)]
        connection.close()
        steady_rows: list[list[str]] = []
        steady_rates = {}
        for label, layout in [("2 partitions in 1 process", [[0, 1]]), ("2 partitions over 2 processes", [[0], [1]])]:
            reset()
            connection.close()
            from project.bootstrap import group

            os.environ["PARLEY_PIPELINE_PARTITIONS"] = "2"
            from django.conf import settings

            settings.PARLEY_PIPELINE_PARTITIONS = 2
            for p in (0, 1):  # start from a caught-up log, as live workers are
                from eventstore.partitions import Partition

                group("pipeline", partition=Partition(p, 2)).catch_up()
            connection.close()
            result = steady(dbname, layout, 2, customers)
            steady_rates[label] = result["apply_rate"]
            log(f"  steady, {label}: appended {fmt_rate(result['append_rate'])} events/s, applied "
                f"{fmt_rate(result['apply_rate'])} events/s, lag at the end {result['lag_at_end']:.0f}")
            steady_rows.append([label, fmt_rate(result["append_rate"]), fmt_rate(result["apply_rate"]),
                                f"{result['lag_at_end']:.0f}"])

    from bench.report import table, write_section

    one = backlog_rates["pipeline, 2 partitions in 1 process (2 threads)"]
    one_busy = backlog_busy["pipeline, 2 partitions in 1 process (2 threads)"]
    cores = os.cpu_count() or 1
    two = backlog_rates["pipeline, 2 partitions over 2 processes"]
    two_busy = backlog_busy["pipeline, 2 partitions over 2 processes"]
    body = (
        f"A log of **{total:,} events** built as bench/replay.py builds it (every row with its customer's shard). "
        "Backlog: the whole log waiting, applied as `runworkers` applies it (batches of 500, a checkpoint per batch, "
        "the rows as of each event, frames built and published), in one pass per row of the table; the read "
        "models are emptied between passes.\n\n"
        + table(["pass", "processes", "partitions", "seconds", "log events/s", "cores busy (PostgreSQL's)"], rows)
        + f"\n\nTwo partitions over two processes apply **{two / one:.2f}×** what they apply in one process "
        f"(target on 2 cores: 1.6×). In one process they kept {one_busy:.2f} of the machine's {cores} cores busy "
        f"({1000 * one_busy / one:.3f} ms of CPU per event), over two {two_busy:.2f} ({1000 * two_busy / two:.3f} ms): "
        f"at the same CPU per event, only the idle cores are left to gain, a ceiling of {cores / one_busy:.2f}× "
        "here; the unpartitioned pipeline is "
        f"{backlog_rates['pipeline, unpartitioned'] / (total / plain_s):.2f}× the plain loop.\n\n"
        f"Steady load: customer and agent messages through the command handler (4 threads, aiming at "
        f"{STEADY_RATE:.0f} messages/s, each a `MessageSent` event) for {STEADY_SECONDS:.0f} s while the partitions "
        "apply them live, woken by each append; applied = events over the time until the watermark reached the "
        "last one.\n\n"
        + table(["layout", "appended events/s", "applied events/s", "lag when appends stopped"], steady_rows)
        + "\n"
    )
    body += "\n" + load_note(load_before)
    write_section("pipeline", "Pipeline throughput, one process and partitions (bench/pipeline.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
