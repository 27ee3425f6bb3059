"""Reports over a large log: ``GET /api/v1/reports/summary`` for a month.

Builds bench/replay.py's log (BENCH_REPLAY_EVENTS, default 200,000 events),
with the conversations' workflow woven in as the workflow would write it
(a waiting period started by a customer's message and stopped by an
agent's reply, resolutions, ratings), folds the reports projection from it
(``rebuild``, as ``rebuild_readmodels --only reports`` does), then times in
the same run, on the same database:

* **summary**: ``readmodels.reports.summary`` for the month (what the
  endpoint runs: two statements and the percentiles, by agent too);
* **baseline**: a plain SQL aggregate over the timeline table, messages
  by side for the same month (``GROUP BY sender_kind``), one statement.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/reports.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_note, loadavg, log, percentile, scratch_database  # noqa: E402

TARGET_EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "200000"))
RUNS = 30
SEED = 2027


#: replay.generate spaces events 1-400 ms apart from 2026-01-01 08:00 (half a day for 200,000
#: events); a month's report is over a month of days, so its times are stretched to about 30 days.
MONTH_SECONDS = 30 * 86400
MEAN_GAP_SECONDS = 0.2005


def stretched(rows: Iterator[tuple[Any, str, int, Any, Any]], events: int) -> Iterator[tuple[Any, str, int, Any, Any]]:
    """replay.generate's rows with every time in them (recorded and in the event) spread over a month."""
    import dataclasses
    import datetime as dt

    start = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone.utc)
    factor = MONTH_SECONDS / (events * MEAN_GAP_SECONDS)

    def stretch(at: dt.datetime) -> dt.datetime:
        return start + (at - start) * factor

    for evt, stream, version, metadata, at in rows:
        times = {f.name: stretch(v) for f in dataclasses.fields(evt) if isinstance(v := getattr(evt, f.name), dt.datetime)}
        yield (dataclasses.replace(evt, **times) if times else evt), stream, version, metadata, stretch(at)


def with_workflow(rows: Iterator[tuple[Any, str, int, Any, Any]]) -> Iterator[tuple[Any, str, int, Any, Any]]:
    """replay.generate's log with each conversation's workflow events after the messages that cause them."""
    import random

    from conversations.events import (
        ConversationRated,
        ConversationStatusChanged,
        FirstResponseClockStarted,
        FirstResponseClockStopped,
        stream_id,
    )
    from eventstore.events import Metadata

    rng = random.Random(SEED)
    version: dict[Any, int] = {}
    waiting: dict[Any, Any] = {}  # customer -> (period id, since)
    resolutions: dict[Any, int] = {}
    system = Metadata(actor="system")

    def conv(customer: Any, evt: Any, at: Any) -> tuple[Any, str, int, Any, Any]:
        version[customer] = version.get(customer, 0) + 1
        return evt, stream_id(customer), version[customer], system, at

    for row in rows:
        yield row
        evt, _, _, _, at = row
        if evt.event_type != "MessageSent":
            continue
        customer = evt.customer_id
        if evt.sender_kind == "customer" and customer not in waiting:
            waiting[customer] = (evt.message_id, at)
            yield conv(customer, FirstResponseClockStarted(customer, evt.message_id, at, None), at)
        elif evt.sender_kind == "agent" and customer in waiting:
            period, since = waiting.pop(customer)
            yield conv(customer, FirstResponseClockStopped(customer, period, evt.message_id, at,
                                                           business_seconds=(at - since).total_seconds()), at)
            if rng.random() < 0.3:
                resolutions[customer] = resolutions.get(customer, 0) + 1
                yield conv(customer, ConversationStatusChanged(customer, "resolved", "open", f"agent:{evt.sender_id}", at), at)
                if rng.random() < 0.7:
                    yield conv(customer, ConversationRated(customer, resolutions[customer], rng.randint(1, 5), "", at), at)


def timed_runs(fn: Any) -> list[float]:
    fn()  # one untimed run: caches warm, plans made
    out = []
    for _ in range(RUNS):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    load_before = loadavg()
    import datetime as dt

    import psycopg

    from bench import replay

    with scratch_database("reports") as dbname:
        from django.db import connection

        from bench.common import conninfo
        from eventstore.events import Cursor
        from eventstore.store import EventStore
        from readmodels import reports
        from readmodels.projections import PIPELINE, ReportsProjection
        from readmodels.rebuild import rebuild

        t = time.perf_counter()
        with psycopg.connect(**conninfo(dbname)) as conn:
            counts = replay.build_log(conn, TARGET_EVENTS,
                                      with_workflow(stretched(replay.generate(TARGET_EVENTS), TARGET_EVENTS)))
        build_s = time.perf_counter() - t
        total = sum(counts.values())
        log(f"  built a log of {total:,} events in {build_s:.1f}s: {counts}")
        head = EventStore().head()
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO parley_checkpoints (name, tx, position, owner, updated_at) VALUES (%s, %s, %s, '', now())",
                [PIPELINE, head.tx, head.position],
            )
        assert EventStore().count_after(Cursor.start()) == total
        t = time.perf_counter()
        rebuild([ReportsProjection()], batch_size=replay.REBUILD_BATCH)
        fold_s = time.perf_counter() - t
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM readmodels_reportfact")
            facts = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM readmodels_reportcount")
            tallies = cur.fetchone()[0]
            cur.execute("SELECT count(DISTINCT day) FROM readmodels_reportcount")
            days = cur.fetchone()[0]
        # Settle the tables as a deployment's have been (autovacuum): visibility map set, statistics current.
        with psycopg.connect(**conninfo(dbname), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) readmodels_reportfact")
            conn.execute("VACUUM (ANALYZE) readmodels_reportcount")
            conn.execute("VACUUM (ANALYZE) readmodels_timelinemessage")
        log(f"  reports folded: {facts:,} facts and {tallies:,} tallies in {fold_s:.1f}s")

        first, last = dt.date(2026, 1, 1), dt.date(2026, 1, 31)
        summary = reports.summary(first, last)
        log(f"  summary: conversations {summary['conversations']:,}, messages {summary['messages']}, "
            f"ratings {summary['rating']['count']:,}")

        def baseline() -> list[tuple[Any, ...]]:
            with connection.cursor() as cur:
                cur.execute("SELECT sender_kind, count(*) FROM readmodels_timelinemessage "
                            "WHERE sent_at >= %s AND sent_at < %s GROUP BY sender_kind",
                            [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)])
                return cur.fetchall()

        by_side = dict(baseline())
        # The two answers agree: the facts count what the timeline holds.
        assert (summary["messages"]["customer"], summary["messages"]["agent"]) == (
            by_side.get("customer", 0), by_side.get("agent", 0)), (summary["messages"], by_side)
        summary_ms = timed_runs(lambda: reports.summary(first, last))
        baseline_ms = timed_runs(baseline)
        connection.close()

    from bench.report import table, write_section

    def row(name: str, ms: list[float]) -> list[str]:
        return [name, f"{statistics.median(ms):.1f}", f"{percentile(ms, 0.9):.1f}", f"{max(ms):.1f}"]

    body = (
        f"The log of bench/replay.py (**{total:,} events** with the conversations' workflow woven in: "
        f"{', '.join(f'{k} {v:,}' for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))}), built in "
        f"{build_s:.1f} s; the reports projection folded from it by `rebuild` in {fold_s:.1f} s "
        f"({tallies:,} tallies of messages, starts and resolutions per conversation, day and agent; {facts:,} measured "
        "facts: waits, resolution times, ratings), its times spread over the 30 days from 1 January 2026 "
        f"({days} days with facts). **summary** is `readmodels.reports.summary` for the month of "
        "January 2026 (all of the log), as `GET /api/v1/reports/summary` runs it: the counts by agent in one "
        "statement (index-only scans of the days), then the measured values' counts, sums and exact percentiles "
        "(`percentile_disc`) by agent and for the team in one more (grouping sets, over an index-only scan in "
        "kind and agent order, so nothing is sorted first); tables vacuumed and analysed "
        "as autovacuum leaves them. The **baseline** is a plain SQL aggregate "
        "over the timeline table for the same month (messages by side, one `GROUP BY`), which the summary's "
        f"message counts equal. Milliseconds over {RUNS} runs each, one connection, after one untimed run; "
        "the target for the summary is 50 ms."
        "\n\n"
        + table(["query", "median ms", "p90 ms", "max ms"],
                [row("**summary** (a month)", summary_ms), row("baseline: SQL aggregate over the timeline", baseline_ms)])
        + "\n"
    )
    body += "\n" + load_note(load_before)
    write_section("reports", "Reports (bench/reports.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
