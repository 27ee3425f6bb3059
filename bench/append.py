"""Append throughput of the event store on PostgreSQL (issue 2, item 7).

Each operation appends one small event (a ``MessageSent``) to a new stream
in its own transaction, through ``EventStore.append``, with 1 and with 2
writer processes. Beside it, in the same run and the same scratch database:

* the baseline: a raw psycopg loop doing INSERT + COMMIT of the same row
  (same encoded payload, ``tx = pg_current_xact_id()``) into a plain table
  created ``LIKE parley_events INCLUDING ALL`` (same columns, constraints
  and indexes), no Django, no ORM;
* the serialised alternative (docs/operations.md, "Ordering on PostgreSQL"): the same raw insert, but
  taking ``pg_advisory_xact_lock`` first, so one writing transaction at a
  time (what a lock-based gap-free log costs);
* a diagnostic: the same raw insert plus ``pg_notify`` in the same
  statement, as ``EventStore.append`` does for its wake-up, to show what
  NOTIFY costs at commit on its own.

Both tables are truncated before every cell so each starts from empty.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/append.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROUNDS,
    SECONDS,
    Result,
    fmt_rate,
    fmt_rates,
    load_note,
    loadavg,
    log,
    mean_rate,
    run_workers,
    scratch_database,
)

RAW_TABLE = "bench_raw_events"
ADVISORY_KEY = 4242
MODES = ("plain", "advisory", "notify")


def _sample_event():  # type: ignore[no-untyped-def]
    import datetime as dt
    import uuid

    from chat.events import MessageSent, SenderKind

    customer = uuid.uuid4()
    return MessageSent(
        message_id=uuid.uuid4(),
        customer_id=customer,
        sender_kind=SenderKind.CUSTOMER.value,
        sender_id=str(customer),
        sender_name="Ada",
        body="Hello, my order has not arrived yet.",
        sent_at=dt.datetime.now(dt.timezone.utc),
    )


# -- children ----------------------------------------------------------------------


def store_writer(index: int):  # type: ignore[no-untyped-def]
    """One EventStore.append of one MessageSent to a new stream per call."""
    import dataclasses
    import datetime as dt
    import uuid

    from eventstore.events import Metadata, NewEvent
    from eventstore.store import EventStore

    store = EventStore()
    template = _sample_event()
    metadata = Metadata(actor=f"customer:{template.customer_id}")

    def op() -> None:
        message_id = uuid.uuid4()
        evt = dataclasses.replace(template, message_id=message_id, sent_at=dt.datetime.now(dt.timezone.utc))
        store.append(f"message-{message_id}", [NewEvent(evt)], expected_version=0, metadata=metadata)

    return op


def raw_writer(index: int, mode: str):  # type: ignore[no-untyped-def]
    """psycopg INSERT + COMMIT of the same row shape; ``mode`` adds a lock or a NOTIFY."""
    import datetime as dt
    import json
    import uuid

    import psycopg
    from django.db import connection

    from eventstore.events import Metadata, encode

    evt = _sample_event()
    data = json.dumps(encode(evt), separators=(",", ":"))
    meta = json.dumps(Metadata(actor=f"customer:{evt.customer_id}").as_json())
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    conn = psycopg.connect(**params)
    notify = ", n AS (SELECT pg_notify('bench_raw', ''))" if mode == "notify" else ""
    sql = (
        f"WITH ins AS (INSERT INTO {RAW_TABLE} "
        "(event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at, tx) "
        "VALUES (%s, %s, 1, 'MessageSent', 1, %s, %s, %s, pg_current_xact_id()::text::bigint) "
        f"RETURNING position, tx){notify} SELECT ins.position, ins.tx FROM ins{', n' if notify else ''}"
    )
    lock = mode == "advisory"

    def op() -> None:
        message_id = uuid.uuid4()
        with conn.cursor() as cur:
            if lock:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_KEY,))
            cur.execute(sql, (uuid.uuid4(), f"message-{message_id}", data, meta, dt.datetime.now(dt.timezone.utc)))
            cur.fetchone()
        conn.commit()

    return op


# -- parent ------------------------------------------------------------------------


def _reset_tables() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE parley_events, {RAW_TABLE} RESTART IDENTITY")


def main() -> int:
    load_before = loadavg()
    cells: dict[tuple[str, int], list[Result]] = {}
    plan = [
        ("raw", "bench.append:raw_writer", ("plain",)),
        ("store", "bench.append:store_writer", ()),
        ("advisory", "bench.append:raw_writer", ("advisory",)),
        ("notify", "bench.append:raw_writer", ("notify",)),
    ]
    with scratch_database("append") as dbname:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute(f"CREATE TABLE {RAW_TABLE} (LIKE parley_events INCLUDING ALL)")
        connection.close()

        for round_no in range(ROUNDS):
            order = plan if round_no % 2 == 0 else plan[::-1]
            for processes in (1, 2):
                for key, target, args in order:
                    _reset_tables()
                    connection.close()
                    res = run_workers(target, processes, dbname, args)
                    cells.setdefault((key, processes), []).append(res)
                    log(
                        f"  round {round_no + 1} {key:9s} x{processes}: "
                        f"{fmt_rate(res.rate)}/s ({res.count} in {res.seconds:.1f}s)"
                    )

    from bench.report import table, write_section

    def rate(key: str, processes: int) -> float:
        return mean_rate(cells[(key, processes)])

    labels = {
        "raw": "raw psycopg INSERT+COMMIT (baseline)",
        "store": "**EventStore.append** (tx-id barrier)",
        "advisory": "raw INSERT+COMMIT after `pg_advisory_xact_lock` (serialised design)",
        "notify": "raw INSERT+COMMIT with `pg_notify` (diagnostic)",
    }
    rows = []
    for key in ("raw", "store", "advisory", "notify"):
        for processes in (1, 2):
            base = rate("raw", processes)
            rows.append(
                [
                    labels[key],
                    processes,
                    fmt_rates(cells[(key, processes)]),
                    f"{rate(key, processes) / base:.2f}" if base else "-",
                    f"{rate(key, 2) / rate(key, 1):.2f}x" if processes == 2 and rate(key, 1) else "",
                ]
            )
    s1, s2 = rate("store", 1), rate("store", 2)
    r1, r2 = rate("raw", 1), rate("raw", 2)
    a1, a2 = rate("advisory", 1), rate("advisory", 2)
    n1, n2 = rate("notify", 1), rate("notify", 2)
    body = (
        "One `MessageSent` appended to a new stream per transaction, "
        f"{SECONDS:g} s per cell after a warm-up, processes started together "
        f"(spawn, barrier), {ROUNDS} round(s) in alternating order: mean "
        "(min–max of the rounds). The raw loops write the same row (same "
        "encoded payload and metadata, `tx = pg_current_xact_id()`) into a "
        "table created `LIKE parley_events INCLUDING ALL` (same columns, "
        "constraints and indexes). Both tables are emptied before each cell.\n\n"
        + table(["writer", "processes", "appends/s", "ratio to raw", "2 vs 1 process"], rows)
        + "\n\n"
        f"- EventStore.append: **{s1 / r1:.2f}** of the raw insert rate with 1 process, "
        f"**{s2 / r2:.2f}** with 2; from 1 to 2 processes it goes {s2 / s1:.2f}x "
        f"(raw: {r2 / r1:.2f}x).\n"
        f"- Serialised alternative (advisory lock): {fmt_rate(a1)}/s with 1 process, "
        f"{fmt_rate(a2)}/s with 2 ({a2 / a1:.2f}x). The lock is held to the end of the "
        "transaction, WAL flush included, so it admits one writing transaction at a "
        "time whatever the number of writers; the transaction-id barrier takes no "
        "lock.\n"
        f"- `pg_notify` (diagnostic): {fmt_rate(n1)}/s and {fmt_rate(n2)}/s. PostgreSQL "
        "serialises the commits of transactions that NOTIFY (a cluster-wide lock from "
        "pre-commit to the end of the transaction), so the wake-up in "
        "`EventStore.append` serialises the commit step, though not the insert work.\n"
        "- Commits are bounded by the WAL flush (synchronous_commit on). The database "
        "shares the 2 cores, so 2 processes is the most this machine measures usefully.\n"
    )
    body += "\n" + load_note(load_before)
    write_section("append", "Event store appends (bench/append.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
