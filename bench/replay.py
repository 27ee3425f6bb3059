"""Rebuild of every read model from a large log (issue 4, item 7).

Builds a log of BENCH_REPLAY_EVENTS (default 200,000) events with a
realistic mix (customers registered and renamed, messages sent by customers
and agents, edits, reads), then times on the same log, in the same run:

* the database's floor: one streaming raw SQL ``SELECT`` of every row in
  reading order (psycopg, server-side cursor, no decoding);
* raw SQL keyset pages of the same size and WHERE clause as the store's
  reads (the access pattern of a reader, without Python decoding);
* the bare read, the rebuild's ceiling: ``EventStore.read_all`` pages from
  the start to the end of the log with the runner's batch size, every
  event decoded;
* ``readmodels.rebuild.rebuild([p])`` (what ``rebuild_readmodels --only``
  runs) for each projection alone, and ``rebuild(read_models())`` for
  all of them in one pass of the log, as ``rebuild_readmodels`` runs it:
  beside the live tables, then swapped in.

The log is written with COPY, not through ``EventStore.append``, so the
build takes seconds; the rows are encoded exactly as ``EventStore._insert``
encodes them (``encode()`` payload JSON, ``Metadata.as_json()``, UTC
``recorded_at``, one stream per message / customer with versions from 1),
and every chunk of rows is copied in its own transaction with ``tx`` set to
that transaction's own ``pg_current_xact_id()``, as a batch of appends in
one transaction would be: increasing, and below the snapshot xmin once
committed. The script checks that the store reads the whole log back.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/replay.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fmt_rate, load_note, loadavg, log, scratch_database  # noqa: E402

TARGET_EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "200000"))
CHUNK = 10_000  # rows per COPY transaction
BATCH = 500  # the pipeline's batch size (bare reads)
REBUILD_BATCH = 5000  # rebuild_readmodels' default batch size
CUSTOMERS = 3_000
AGENTS = 25
SEED = 20260101


def generate(target: int) -> Iterator[tuple[Any, str, int, Any, Any]]:
    """Yield (event, stream_id, version, metadata, recorded_at) in log order; deterministic."""
    import datetime as dt
    import random
    import uuid
    from collections import deque

    from chat.events import MessageEdited, MessageMarkedAsRead, MessageSent, SenderKind
    from customers.events import ContactDetailsChanged, CustomerRegistered
    from eventstore.events import Metadata

    rng = random.Random(SEED)
    now = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone.utc)
    customers = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(CUSTOMERS)]
    registered: dict[uuid.UUID, int] = {}  # customer -> stream version
    names: dict[uuid.UUID, str] = {}
    agents = [(str(i + 1), f"Agent {i + 1}") for i in range(AGENTS)]
    versions: dict[uuid.UUID, int] = {}  # message -> stream version
    meta_of: dict[uuid.UUID, tuple[uuid.UUID, str, str, str]] = {}  # message -> (customer, kind, id, body)
    unread: list[uuid.UUID] = []  # messages not yet marked read by their receiver
    recent: deque[uuid.UUID] = deque(maxlen=2000)
    words = "order parcel refund invoice thanks hello delivery address account password help please".split()
    emitted = 0

    def pick_customer() -> uuid.UUID:
        # A few busy conversations, a long tail of quiet ones.
        return customers[int(CUSTOMERS * rng.random() ** 2)]

    def body() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(3, 30))).capitalize() + "."

    while emitted < target:
        now += dt.timedelta(milliseconds=rng.randint(1, 400))
        roll = rng.random()
        if roll < 0.55 or not unread:
            customer = pick_customer()
            if customer not in registered:
                registered[customer] = 1
                names[customer] = f"Customer {len(registered)}"
                yield (
                    CustomerRegistered(customer, names[customer], f"c{len(registered)}@example.com", "", None),
                    f"customer-{customer}",
                    1,
                    Metadata(actor="integration"),
                    now,
                )
                emitted += 1
            message_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            if rng.random() < 0.55:
                kind, sender_id, sender_name = SenderKind.CUSTOMER, str(customer), names[customer]
            else:
                sender_id, sender_name = rng.choice(agents)
                kind = SenderKind.AGENT
            text = body()
            versions[message_id] = 1
            meta_of[message_id] = (customer, kind.value, sender_id, text)
            unread.append(message_id)
            recent.append(message_id)
            yield (
                MessageSent(message_id, customer, kind.value, sender_id, sender_name, text, now),
                f"message-{message_id}",
                1,
                Metadata(actor=f"{kind.value}:{sender_id}"),
                now,
            )
        elif roll < 0.92:
            i = rng.randrange(len(unread))
            unread[i], unread[-1] = unread[-1], unread[i]
            message_id = unread.pop()
            customer, sent_by, _, _ = meta_of[message_id]
            if sent_by == SenderKind.AGENT.value:
                reader_kind, reader_id = SenderKind.CUSTOMER.value, str(customer)
            else:
                reader_kind, reader_id = SenderKind.AGENT.value, rng.choice(agents)[0]
            versions[message_id] += 1
            yield (
                MessageMarkedAsRead(message_id, customer, reader_kind, reader_id, now),
                f"message-{message_id}",
                versions[message_id],
                Metadata(actor=f"{reader_kind}:{reader_id}"),
                now,
            )
        elif roll < 0.99:
            message_id = rng.choice(recent)
            customer, sent_by, sender_id, _ = meta_of[message_id]
            versions[message_id] += 1
            yield (
                MessageEdited(message_id, customer, body(), now),
                f"message-{message_id}",
                versions[message_id],
                Metadata(actor=f"{sent_by}:{sender_id}"),
                now,
            )
        else:
            customer = rng.choice(list(registered)) if registered else pick_customer()
            if customer not in registered:
                continue
            registered[customer] += 1
            names[customer] = f"{names[customer].split(' (')[0]} ({registered[customer]})"
            yield (
                ContactDetailsChanged(customer, names[customer], f"c{registered[customer]}@example.org", "+1 555 0100"),
                f"customer-{customer}",
                registered[customer],
                Metadata(actor="integration"),
                now,
            )
        emitted += 1


def build_log(
    conn: Any, target: int, log_rows: Iterator[tuple[Any, str, int, Any, Any]] | None = None,
    payload: Callable[[Any], str] | None = None,
) -> dict[str, int]:
    """COPY the generated log (or ``log_rows``, in generate's shape) into parley_events; returns counts per event type.

    ``payload`` gives the stored ``data`` of an event (default: its plain JSON;
    bench/privacy.py seals it as the store does)."""
    import json
    import uuid

    from eventstore.events import encode, shard_of_event

    if payload is None:
        def payload(evt: Any) -> str:
            return json.dumps(encode(evt), separators=(",", ":"))

    counts: dict[str, int] = {}
    rows = log_rows if log_rows is not None else generate(target)
    done = False
    while not done:
        with conn.transaction():
            tx = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
            with conn.cursor().copy(
                "COPY parley_events (event_id, stream_id, version, event_type, schema_version, "
                "data, metadata, recorded_at, shard, tx) FROM STDIN"
            ) as copy:
                n = 0
                for evt, stream, version, meta, at in rows:
                    copy.write_row(
                        (
                            uuid.uuid4(),
                            stream,
                            version,
                            evt.event_type,
                            evt.schema_version,
                            payload(evt),
                            json.dumps(meta.as_json()),
                            at,
                            shard_of_event(evt),
                            tx,
                        )
                    )
                    counts[evt.event_type] = counts.get(evt.event_type, 0) + 1
                    n += 1
                    if n == CHUNK:
                        break
                else:
                    done = True
    # Settle the table as a log that has been there a while is: hint bits set
    # and statistics current, so the first timed pass does not pay for them.
    ac = conn.autocommit
    conn.autocommit = True
    conn.execute("VACUUM (ANALYZE) parley_events")
    conn.autocommit = ac
    return counts


# -- timed reads ---------------------------------------------------------------------

_COLUMNS = "position, tx, event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at"


def raw_stream(conn: Any) -> int:
    """Every row, one streaming SELECT in reading order, nothing decoded."""
    n = 0
    with conn.transaction(), conn.cursor(name="bench_all") as cur:
        cur.itersize = 5000
        cur.execute(f"SELECT {_COLUMNS} FROM parley_events ORDER BY tx, position")
        while True:
            rows = cur.fetchmany(5000)
            if not rows:
                break
            n += len(rows)
    return n


def raw_pages(conn: Any) -> int:
    """Keyset pages of BATCH rows with the store's barrier and ordering, nothing decoded."""
    n, tx, pos = 0, 0, 0
    sql = (
        f"SELECT {_COLUMNS} FROM parley_events "
        "WHERE tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint AND (tx, position) > (%s, %s) "
        "ORDER BY tx, position LIMIT %s"
    )
    while True:
        rows = conn.execute(sql, (tx, pos, BATCH)).fetchall()
        conn.commit()
        if not rows:
            return n
        n += len(rows)
        tx, pos = rows[-1][1], rows[-1][0]


def bare_read() -> int:
    """EventStore.read_all from start to end, BATCH at a time (every event decoded)."""
    from eventstore.events import Cursor
    from eventstore.store import EventStore

    store = EventStore()
    after, n = Cursor.start(), 0
    while True:
        events = store.read_all(after, BATCH)
        if not events:
            return n
        n += len(events)
        after = events[-1].cursor


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> int:
    load_before = loadavg()
    import psycopg

    rows: list[list[object]] = []
    with scratch_database("replay") as dbname:
        from django.db import connection

        from bench.common import conninfo
        from eventstore.events import Cursor
        from eventstore.store import EventStore
        from readmodels.projections import PIPELINE, read_models
        from readmodels.rebuild import rebuild

        with psycopg.connect(**conninfo(dbname)) as conn:
            counts, build_s = timed(build_log, conn, TARGET_EVENTS)
        total = sum(counts.values())
        log(f"  built a log of {total:,} events in {build_s:.1f}s: {counts}")
        readable = EventStore().count_after(Cursor.start())
        if readable != total:
            raise SystemExit(f"the store reads {readable} of {total} events back: the log is not readable")
        connection.close()

        with psycopg.connect(**conninfo(dbname)) as conn:
            n, floor_s = timed(raw_stream, conn)
            assert n == total, (n, total)
            log(f"  raw SELECT (streaming): {fmt_rate(n / floor_s)}/s in {floor_s:.2f}s")
            n, pages_s = timed(raw_pages, conn)
            assert n == total, (n, total)
            log(f"  raw SQL pages of {BATCH}: {fmt_rate(n / pages_s)}/s in {pages_s:.2f}s")
        n, read_s = timed(bare_read)
        assert n == total, (n, total)
        log(f"  EventStore.read_all pages of {BATCH}: {fmt_rate(n / read_s)}/s in {read_s:.2f}s")

        # The live pipeline has processed the whole log: a rebuild replays up to it.
        head = EventStore().head()
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO parley_checkpoints (name, tx, position, owner, updated_at) VALUES (%s, %s, %s, '', now())",
                [PIPELINE, head.tx, head.position],
            )
        per: list[tuple[str, int, int, float]] = []
        for projection in read_models():
            types = projection.event_types
            wanted = sum(c for t, c in counts.items() if t in types)
            # A projection is rebuilt with those it reads (the badge with the unread set).
            results, secs = timed(lambda p=projection: rebuild([p], batch_size=REBUILD_BATCH))
            (result,) = [r for r in results if r.name == projection.name]
            per.append((projection.name, wanted, result.events, secs))
            log(
                f"  rebuild {projection.name}: {wanted:,} of its events, "
                f"{fmt_rate(total / secs)} log events/s, {secs:.2f}s"
            )
        results, all_s = timed(lambda: rebuild(read_models(), batch_size=REBUILD_BATCH))
        log(f"  rebuild all in one pass: {fmt_rate(total / all_s)} log events/s, {all_s:.2f}s")
        with connection.cursor() as cur:
            sizes = {}
            for name in ("readmodels_directoryentry", "readmodels_timelinemessage", "readmodels_conversation",
                          "readmodels_badge", "readmodels_unread"):
                cur.execute(f"SELECT count(*) FROM {name}")
                sizes[name.removeprefix("readmodels_")] = cur.fetchone()[0]
        connection.close()

    read_rate = total / read_s
    rows.append(
        ["raw SQL: one streaming `SELECT` of every row (floor)", f"{floor_s:.2f}", fmt_rate(total / floor_s), "", ""]
    )
    rows.append(
        [f"raw SQL: keyset pages of {BATCH}, store's WHERE/ORDER", f"{pages_s:.2f}", fmt_rate(total / pages_s), "", ""]
    )
    rows.append(
        [
            f"**bare read**: `EventStore.read_all` pages of {BATCH} (ceiling)",
            f"{read_s:.2f}",
            fmt_rate(read_rate),
            "1.00",
            "",
        ]
    )
    for name, wanted, _, secs in per:
        rate = total / secs
        rows.append([f"rebuild `{name}`", f"{secs:.2f}", fmt_rate(rate), f"{rate / read_rate:.2f}", f"{wanted:,}"])
    rows.append(
        ["**rebuild all read models** (one pass, `rebuild_readmodels`)", f"{all_s:.2f}", f"**{fmt_rate(total / all_s)}**",
         f"{(total / all_s) / read_rate:.2f}", f"{sum(r.events for r in results):,}"]
    )

    from bench.report import table, write_section

    mix = ", ".join(f"{t} {c:,}" for t, c in sorted(counts.items(), key=lambda kv: -kv[1]))
    from readmodels import rebuild as rebuild_module

    rebuild_processes, rebuild_parallel_from = rebuild_module.PROCESSES, rebuild_module.PARALLEL_FROM
    body = (
        f"A log of **{total:,} events** ({mix}) from {CUSTOMERS:,} customers and "
        f"{AGENTS} agents, written with COPY in transactions of {CHUNK:,} rows "
        f"(encoded as `EventStore` encodes them, `tx` = the copying transaction's id) "
        f"in {build_s:.1f} s. Rates are log events per second (every pass scans the "
        f"whole log). Reads in pages of {BATCH} (the pipeline's batch). Rebuilds run as "
        "`rebuild_readmodels` does: fresh tables beside the live ones, read in batches of "
        f"{REBUILD_BATCH:,} events applied through one unit of work kept over the whole pass "
        "(rows held in memory, never read back, written once with COPY over two connections of their own, "
        "the indexes that enforce nothing built after the rows), then one transaction "
        "that swaps the new tables in. "
        + (f"The bulk of each pass is folded by {rebuild_processes} forked processes, each a share of the customers "
           f"(`PARLEY_REBUILD_PROCESSES`; from {rebuild_parallel_from:,} events). "
           if rebuild_processes > 1 else "The whole pass runs in one process (`PARLEY_REBUILD_PROCESSES` = 1). ")
        + "The last row feeds every read model from one pass of the log; the target is 20,000 log events/s."
        "\n\n"
        + table(["pass", "seconds", "log events/s", "vs bare read", "events applied"], rows)
        + "\n\n"
        f"Read models after the rebuild: {', '.join(f'{k} {v:,} rows' for k, v in sizes.items())}.\n"
    )
    body += "\n" + load_note(load_before)
    write_section("replay", "Read-model rebuild (bench/replay.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
