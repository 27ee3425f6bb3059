"""Search latency over a large log (issue 17).

Builds the 200,000-event log of bench/replay.py (its generator and COPY
loader, imported), fills the read models search answers from (the search
index, the timeline and the directory) with ``rebuild`` as
``rebuild_readmodels`` does, then times, in the same run and on the same
rows:

* **search**: ``readmodels.selectors.search`` (what ``GET /api/v1/search``
  runs after parsing the query): the GIN index, ``ts_rank`` over the
  newest ``RANKED`` matches, ``ts_headline`` for the page, the messages
  and names of the page;
* **baseline**: a plain scan, ``SELECT ... WHERE text ILIKE '%term%' ORDER
  BY position DESC LIMIT 20`` over the same search rows (what search would
  be without an index: no ranking, no highlight, and ``%term%`` matches
  inside words).

Each query runs ``BENCH_SEARCH_REPEAT`` times (after one untimed run); p50
and p99 of each are printed and written to docs/benchmarks.md. The log's
bodies are drawn from twelve words, so its common words match most
messages: the worst case for search, the best for the scan.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/search.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_note, loadavg, log, percentile, scratch_database  # noqa: E402
from bench.replay import TARGET_EVENTS, build_log, timed  # noqa: E402

REPEAT = int(os.environ.get("BENCH_SEARCH_REPEAT", "30"))
LIMIT = 20
#: (what it shows, the query): common words, a prefix, a customer, nothing.
QUERIES = [
    ("a common word", "refund"),
    ("two common words", "parcel refund"),
    ("a prefix", "deliv"),
    ("a customer's name", "customer 1234"),
    ("a word no text has", "zebra"),
]


def percentiles(fn: Callable[[], object]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of REPEAT calls of ``fn``, after one untimed call."""
    fn()
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return percentile(times, 0.5), percentile(times, 0.99)


def main() -> int:
    load_before = loadavg()
    import psycopg

    rows: list[list[object]] = []
    with scratch_database("search") as dbname:
        from django.db import connection

        from bench.common import conninfo
        from eventstore.store import EventStore
        from readmodels import selectors
        from readmodels.fulltext import RANKED, SEARCH_TABLE, prefix_tsquery
        from readmodels.projections import PIPELINE, DirectoryProjection, SearchProjection, TimelineProjection
        from readmodels.rebuild import rebuild

        with psycopg.connect(**conninfo(dbname)) as conn:
            counts, build_s = timed(build_log, conn, TARGET_EVENTS)
        total = sum(counts.values())
        log(f"  built a log of {total:,} events in {build_s:.1f}s")
        head = EventStore().head()
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO parley_checkpoints (name, tx, position, owner, updated_at) VALUES (%s, %s, %s, '', now())",
                [PIPELINE, head.tx, head.position],
            )
        _, index_s = timed(lambda: rebuild([SearchProjection(), TimelineProjection(), DirectoryProjection()]))
        with connection.cursor() as cur:
            cur.execute(f"VACUUM ANALYZE {SEARCH_TABLE}")
            cur.execute(f"SELECT count(*), count(*) FILTER (WHERE kind = 'customer') FROM {SEARCH_TABLE}")
            entries, customers = cur.fetchone()
            cur.execute("SELECT pg_size_pretty(pg_relation_size('search_text'))")
            (index_size,) = cur.fetchone()
        log(f"  search index of {entries:,} rows built (with timeline and directory) in {index_s:.1f}s")

        def ilike(term: str) -> Callable[[], object]:
            pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

            def run() -> object:
                with connection.cursor() as cur:
                    cur.execute(
                        f"SELECT key, text FROM {SEARCH_TABLE} WHERE text ILIKE %s ORDER BY position DESC LIMIT %s",
                        [pattern, LIMIT],
                    )
                    return cur.fetchall()

            return run

        for what, q in QUERIES:
            matches = None

            def search(q: str = q) -> object:
                nonlocal matches
                page = selectors.search(q, LIMIT)
                matches = len(page.items)
                return page

            with connection.cursor() as cur:  # how many rows the query matches, for the table
                cur.execute(
                    f"SELECT count(*) FROM {SEARCH_TABLE} WHERE to_tsvector('simple'::regconfig, text) @@ %s::tsquery",
                    [prefix_tsquery(q.lower().split())],
                )
                (matching,) = cur.fetchone()
            s50, s99 = percentiles(search)
            term = q.split()[-1]
            b50, b99 = percentiles(ilike(term))
            log(f"  {what} {q!r}: search p50 {s50:.1f} ms p99 {s99:.1f} ms; ILIKE '%{term}%' p50 {b50:.1f} ms p99 {b99:.1f} ms")
            rows.append([f"{what}: `{q}`", f"{matching:,}", f"{s50:.1f}", f"{s99:.1f}", f"`%{term}%`", f"{b50:.1f}",
                         f"{b99:.1f}"])
        connection.close()

    from bench.report import table, write_section

    body = (
        f"The log of bench/replay.py (**{total:,} events**, built in {build_s:.1f} s), its search index "
        f"({entries:,} rows: {entries - customers:,} messages at their current text, {customers:,} customers; "
        f"GIN index {index_size}, `PARLEY_SEARCH_CONFIG=simple`) built by `rebuild` with the timeline and "
        f"directory in {index_s:.1f} s. **search** is `readmodels.selectors.search` as `GET /api/v1/search` runs "
        f"it (limit {LIMIT}): every word a prefix, matched through the GIN index, the newest {RANKED:,} matches "
        f"ranked with `ts_rank`, `ts_headline` and the message objects for the page. The **baseline** is a plain scan of the same rows, `WHERE text ILIKE '%term%' "
        f"ORDER BY position DESC LIMIT {LIMIT}` (the last word of the query; no ranking, no highlight). "
        f"Milliseconds over {REPEAT} runs each, one connection, after one untimed run. The log's bodies are "
        "drawn from twelve words, so its common words match most messages: the worst case for search, which "
        f"finds every match and ranks {RANKED:,} of them, and the best for the scan, which stops at its twentieth hit; "
        "a rare word is the other way round."
        "\n\n"
        + table(["query", "rows matching", "search p50", "search p99", "baseline", "ILIKE p50", "ILIKE p99"], rows)
        + "\n"
    )
    body += "\n" + load_note(load_before)
    write_section("search", "Search (bench/search.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
