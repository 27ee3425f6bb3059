"""The CPU of a live-like batch, group by group: what each message costs the workers.

Under bench/realtime.py's load the pipeline's batches hold a few messages
each, and their cost is what the live path waits for. This benchmark makes
that batch alone, on PostgreSQL, many times: 8 messages through the command
handler (6 from customers, 2 agent replies, over 300 customers), then one
batch of each consumer group as ``runworkers`` runs them (the pipeline,
then the workflow, push, webhooks and the email fallback), each in its
own transaction. It reports the CPU each group's batch takes in this
process (``time.process_time``) and the CPU of the PostgreSQL backend that
served them all (from /proc), per round of 8 messages.

The baseline, measured in the same run on alternate rounds: the unit of
work writing every table's rows as one binary array per column (``INSERT …
SELECT * FROM unnest(%b::uuid[], …)``), as it did before it sent them as
one JSON parameter (eventstore.tables.Table.json_rows); the product does
so for the rows as of each event only (their JSON is kept as text). Both
write the same rows; only the statements that carry them differ.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/batch.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_note, loadavg, log, scratch_database  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_BATCH_ROUNDS", "400"))  # measured rounds, half of them baseline
WARMUP = 40
MESSAGES = 8


def _baseline_writer() -> Any:
    """Unit._insert with the baseline's PostgreSQL statement for every table: one binary
    array per column, unnested into rows (eventstore.unit.array_statements, which the
    product uses for the rows as of each event only)."""
    from eventstore.unit import Unit, array_statements

    product = Unit._insert

    def insert(self: Any, table: Any, rows: list[dict[str, Any]], *, upsert: bool = False,
               ignore: Any = ()) -> list[Any]:
        if not rows or not table.postgres:
            return product(self, table, rows, upsert=upsert, ignore=ignore)
        return array_statements(table, rows, upsert=upsert, ignore=ignore)

    return product, insert


def _backend_cpu() -> float:
    """Seconds of CPU the PostgreSQL backend of this connection has used."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SELECT pg_backend_pid()")
        (pid,) = c.fetchone()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    if not os.environ.get("DATABASE_URL", "postgres").startswith("postgres"):
        print("bench/batch.py measures PostgreSQL's batches: set DATABASE_URL to a PostgreSQL server")
        return 2
    load_before = loadavg()
    with scratch_database("batch"):
        from chat.commands import Actor, SendMessage
        from chat.events import SenderKind
        from chat.handlers import send_message
        from customers.services import customer_register
        from eventstore.unit import Unit
        from project.bootstrap import GROUPS, group

        customers = [customer_register(name=f"Batch {i}").customer.id for i in range(300)]
        runners = {name: group(name, owner="bench") for name in GROUPS}
        for r in runners.values():
            assert r.acquire_lease()
        product, baseline = _baseline_writer()
        modes = {"json": product, "arrays": baseline}
        cpu: dict[str, dict[str, list[float]]] = {m: {n: [] for n in runners} for m in modes}
        backend: dict[str, list[float]] = {m: [] for m in modes}
        sent = 0
        log(f"{WARMUP} rounds of warm-up, then {ROUNDS} measured, alternating the two writers")
        for i in range(WARMUP + ROUNDS):
            mode = "json" if i % 2 else "arrays"
            Unit._insert = modes[mode]  # type: ignore[method-assign]
            for k in range(MESSAGES):
                c = customers[sent % len(customers)]
                sent += 1
                actor = Actor(SenderKind.AGENT, "1", "Grace") if k % 4 == 0 else Actor(SenderKind.CUSTOMER, str(c))
                send_message(SendMessage(uuid.uuid4(), c, actor, f"round {i} message {k}"))
            pg_before = _backend_cpu()
            for name, r in runners.items():
                start = time.process_time()
                progress = r.process_batch()
                spent = time.process_time() - start
                assert progress.moved or name != "pipeline"
                if i >= WARMUP:
                    cpu[mode][name].append(spent * 1000)
            if i >= WARMUP:
                backend[mode].append((_backend_cpu() - pg_before) * 1000)
        Unit._insert = product  # type: ignore[method-assign]

    from bench.report import table, write_section

    def mean(values: list[float]) -> float:
        return statistics.fmean(values)

    rows = []
    for name in runners:
        j, a = mean(cpu["json"][name]), mean(cpu["arrays"][name])
        rows.append([f"`{name}`", f"{a:.2f}", f"**{j:.2f}**", f"{j / a:.2f}"])
    tj = sum(mean(v) for v in cpu["json"].values())
    ta = sum(mean(v) for v in cpu["arrays"].values())
    rows.append(["all groups (the workers' process)", f"{ta:.2f}", f"**{tj:.2f}**", f"{tj / ta:.2f}"])
    bj, ba = mean(backend["json"]), mean(backend["arrays"])
    rows.append(["their PostgreSQL backend", f"{ba:.2f}", f"**{bj:.2f}**", f"{bj / ba:.2f}"])
    half = ROUNDS // 2
    body = (
        f"A live-like batch: {MESSAGES} messages through the command handler (6 from customers, 2 agent "
        "replies, over 300 customers), then one batch of each consumer group in turn, as `runworkers` runs "
        f"them. Mean CPU milliseconds per round of {MESSAGES} messages over {half} rounds each, the two "
        "writers alternating round by round after "
        f"{WARMUP} rounds of warm-up: **json** is the product (a table's rows as one JSON parameter, "
        "`jsonb_populate_recordset`, written by orjson; the rows as of each event, JSON kept as text, as "
        "arrays); the baseline **arrays** writes every table's rows as one binary array per column "
        "(`unnest`), as the unit did before. The groups' CPU is this process's "
        "(`time.process_time`); the backend's is read from /proc around the groups' batches (the commands "
        "before them are not counted).\n\n"
        + table(["group", "arrays (baseline) ms", "json ms", "json / arrays"], rows)
        + "\n"
    )
    body += "\n" + load_note(load_before)
    write_section("batch", "A live-like batch's CPU, group by group (bench/batch.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
