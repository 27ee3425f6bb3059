"""SendMessage commands per second.

Parley: ``chat.handlers.send_message(SendMessage(...))``, each a new message
(so a new ``message-<id>`` stream: the aggregate decides, and one INSERT at
expected version 0 commits on its own; only a repeat would read the
stream), with 1 and with 2 processes.

Beside it, in the same run and the same scratch database (its own schema
``es_bench``): the ``eventsourcing`` library (pyeventsourcing 9.x) with its
PostgreSQL persistence module, configured through the Application's
constructor env (PERSISTENCE_MODULE=eventsourcing.postgres, POSTGRES_*,
POSTGRES_SCHEMA, CREATE_TABLE), doing the equivalent work: one new
aggregate with one event per operation, saved through ``Application.save``.
Its application recorder takes ``LOCK TABLE ... IN EXCLUSIVE MODE`` on every
insert to keep its notification ids gap-free, which serialises writers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/commands.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.application import Application  # noqa: E402
from eventsourcing.domain import Aggregate, event  # noqa: E402

from bench.common import (  # noqa: E402
    ROUNDS,
    SECONDS,
    Result,
    conninfo,
    fmt_rate,
    fmt_rates,
    load_note,
    loadavg,
    log,
    mean_rate,
    run_workers,
    scratch_database,
)

ES_SCHEMA = "es_bench"
BODY = "Hello, my order has not arrived yet. Could you check, please?"


# -- the eventsourcing side: one aggregate per message ------------------------------


class BenchMessage(Aggregate):
    @event("Sent")
    def __init__(self, customer_id: str, sender: str, body: str) -> None:
        self.customer_id = customer_id
        self.sender = sender
        self.body = body


class BenchMessages(Application[Any]):
    def send(self, customer_id: str, sender: str, body: str) -> None:
        self.save(BenchMessage(customer_id, sender, body))


def es_env(dbname: str, create_table: bool) -> dict[str, str]:
    info = conninfo(dbname)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": info["dbname"],
        "POSTGRES_HOST": str(info["host"]),
        "POSTGRES_PORT": str(info["port"]),
        "POSTGRES_USER": info["user"],
        "POSTGRES_PASSWORD": info.get("password", ""),
        "POSTGRES_SCHEMA": ES_SCHEMA,
        "CREATE_TABLE": "y" if create_table else "n",
    }


# -- children ------------------------------------------------------------------------


def parley_sender(index: int):  # type: ignore[no-untyped-def]
    import uuid

    from chat.commands import Actor, SendMessage
    from chat.events import SenderKind
    from chat.handlers import send_message

    customers = [uuid.uuid4() for _ in range(50)]
    n = 0

    def op() -> None:
        nonlocal n
        n += 1
        customer = customers[n % len(customers)]
        sender = Actor(SenderKind.CUSTOMER, str(customer), "Ada")
        outcome = send_message(SendMessage(message_id=uuid.uuid4(), customer_id=customer, sender=sender, body=BODY))
        assert outcome.appended

    return op


def es_sender(index: int, dbname: str):  # type: ignore[no-untyped-def]
    import uuid

    app = BenchMessages(env=es_env(dbname, create_table=False))
    customers = [str(uuid.uuid4()) for _ in range(50)]
    n = 0

    def op() -> None:
        nonlocal n
        n += 1
        customer = customers[n % len(customers)]
        app.send(customer, f"customer:{customer}", BODY)

    return op


# -- parent ----------------------------------------------------------------------------


def main() -> int:
    load_before = loadavg()
    cells: dict[tuple[str, int], list[Result]] = {}
    with scratch_database("commands") as dbname:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {ES_SCHEMA}")
        connection.close()
        # Tables, types and indexes of the library, created once by the library.
        BenchMessages(env=es_env(dbname, create_table=True)).close()

        plan = [
            ("eventsourcing", "bench.commands:es_sender", (dbname,)),
            ("parley", "bench.commands:parley_sender", ()),
        ]
        for round_no in range(ROUNDS):
            order = plan if round_no % 2 == 0 else plan[::-1]
            for processes in (1, 2):
                for key, target, args in order:
                    res = run_workers(target, processes, dbname, args)
                    cells.setdefault((key, processes), []).append(res)
                    log(
                        f"  round {round_no + 1} {key:13s} x{processes}: "
                        f"{fmt_rate(res.rate)}/s ({res.count} in {res.seconds:.1f}s)"
                    )
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM parley_events WHERE event_type = 'MessageSent'")
            parley_rows = cur.fetchone()[0]
            cur.execute(f"SELECT count(*) FROM {ES_SCHEMA}.benchmessages_events")
            es_rows = cur.fetchone()[0]
        connection.close()

    from bench.report import table, write_section

    def rate(key: str, processes: int) -> float:
        return mean_rate(cells[(key, processes)])

    labels = {
        "parley": "**Parley** `chat.handlers.send_message`",
        "eventsourcing": "eventsourcing 9.x `Application.save` (PostgreSQL, table lock)",
    }
    rows = []
    for key in ("parley", "eventsourcing"):
        for processes in (1, 2):
            base = rate("eventsourcing", processes)
            rows.append(
                [
                    labels[key],
                    processes,
                    fmt_rates(cells[(key, processes)]),
                    f"{rate(key, processes) / base:.2f}" if base else "-",
                    f"{rate(key, 2) / rate(key, 1):.2f}x" if processes == 2 and rate(key, 1) else "",
                ]
            )
    p1, p2, e1, e2 = rate("parley", 1), rate("parley", 2), rate("eventsourcing", 1), rate("eventsourcing", 2)
    body = (
        "Each operation sends one new message: Parley lets the aggregate decide "
        "and appends `MessageSent` to the new stream `message-<id>` at expected "
        "version 0 with one INSERT that commits on its own (the unique "
        "(stream, version) constraint is the concurrency check; only a repeat "
        "reads the stream); eventsourcing creates one new aggregate "
        "with one event and saves it through its Application (PostgreSQL "
        f"persistence module, schema `{ES_SCHEMA}`, same scratch database). "
        f"{SECONDS:g} s per cell after a warm-up, processes started together "
        f"(spawn, barrier), {ROUNDS} round(s) in alternating order: mean "
        "(min–max of the rounds).\n\n"
        + table(["implementation", "processes", "commands/s", "ratio to eventsourcing", "2 vs 1 process"], rows)
        + "\n\n"
        f"- Parley: {p2 / p1:.2f}x from 1 to 2 processes (per-message streams, no "
        f"lock); eventsourcing: {e2 / e1:.2f}x (its `LOCK TABLE ... IN EXCLUSIVE MODE` "
        "serialises writers).\n"
        f"- Rows written in this run: {parley_rows:,} `MessageSent` events by Parley, "
        f"{es_rows:,} by eventsourcing (warm-ups included).\n"
    )
    body += "\n" + load_note(load_before)
    write_section("commands", "SendMessage commands (bench/commands.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
