"""What sealing personal data costs: commands and a rebuild, with and without it, in one run.

Parley seals each event's personal fields with its customer's key
(eventstore.keys) when it appends, and opens them when it reads. Beside it,
in the same run and scratch database, the same code with the event types'
personal-field declarations removed (``eventstore.events`` registry
emptied in that process only), so nothing is sealed and no key is read:

* **commands**: ``chat.handlers.send_message`` of new messages, 1 process,
  sealed and plain cells in alternating order (as bench/commands.py);
* **rebuild**: ``rebuild(read_models())`` of a log of BENCH_PRIVACY_EVENTS
  events (default 100,000; bench/replay.py's mix), once written sealed (keys
  made for each customer, payloads sealed as ``EventStore`` seals them) and
  plain, side by side in the scratch database, rebuilt ``ROUNDS`` times each
  in alternating order.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/privacy.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROUNDS, fmt_rate, load_note, loadavg, log, mean_rate, run_workers, scratch_database  # noqa: E402

TARGET_EVENTS = int(os.environ.get("BENCH_PRIVACY_EVENTS", "100000"))


def plain() -> None:
    """This process seals nothing: no event type declares personal fields."""
    from eventstore import events

    events._personal.clear()


def sealed_sender(index: int):  # type: ignore[no-untyped-def]
    from bench.commands import parley_sender

    return parley_sender(index)


def plain_sender(index: int):  # type: ignore[no-untyped-def]
    from bench.commands import parley_sender

    plain()
    return parley_sender(index)


def build(conn: Any, target: int, *, seal: bool) -> int:
    """COPY bench/replay.py's generated log into parley_events, sealed or plain; returns the events written."""
    from bench.replay import build_log
    from eventstore import keys
    from eventstore.store import stored_payload, subject_of

    ring = keys.Keyring({})

    def sealed(evt: Any) -> str:
        subject = subject_of(evt) if seal else None
        if subject is not None and subject not in ring.ciphers:
            ring.ciphers.update(keys.for_appending([subject]).ciphers)
        return stored_payload(evt, ring)

    return sum(build_log(conn, target, payload=sealed).values())


def rebuild_rate(total: int) -> float:
    from readmodels.projections import read_models
    from readmodels.rebuild import rebuild

    start = time.perf_counter()
    rebuild(read_models(), batch_size=5000)
    return total / (time.perf_counter() - start)


def main() -> int:
    load_before = loadavg()
    import psycopg

    commands: dict[str, list[Any]] = {"sealed": [], "plain": []}
    rebuilds: dict[str, list[float]] = {"sealed": [], "plain": []}
    with scratch_database("privacy") as dbname:
        from django.db import connection

        from bench.common import conninfo
        from eventstore import events
        from eventstore.events import Cursor
        from eventstore.store import EventStore
        from readmodels.projections import PIPELINE

        plan = [("sealed", "bench.privacy:sealed_sender"), ("plain", "bench.privacy:plain_sender")]
        for round_no in range(ROUNDS):
            for key, target in plan if round_no % 2 == 0 else plan[::-1]:
                res = run_workers(target, 1, dbname)
                commands[key].append(res)
                log(f"  round {round_no + 1} commands {key:6s}: {fmt_rate(res.rate)}/s")

        # Two logs of the same events, one sealed, one plain, side by side in the
        # database (the one not in use renamed aside), rebuilt in alternating
        # order so that the machine's moods fall on both alike.
        declared = dict(events._personal)
        current = {"key": "sealed"}

        def use(key: str) -> None:
            events._personal.clear()
            if key == "sealed":
                events._personal.update(declared)
            if current["key"] != key:
                with connection.cursor() as cur:
                    cur.execute(f"ALTER TABLE parley_events RENAME TO parley_events_{current['key']}")
                    cur.execute(f"ALTER TABLE parley_events_{key} RENAME TO parley_events")
                current["key"] = key
            head = EventStore().head()
            with connection.cursor() as cur:
                cur.execute("DELETE FROM parley_checkpoints")
                cur.execute("INSERT INTO parley_checkpoints (name, tx, position, owner, updated_at) "
                            "VALUES (%s, %s, %s, '', now())", [PIPELINE, head.tx, head.position])

        total = 0
        with connection.cursor() as cur:
            cur.execute("TRUNCATE parley_events, parley_checkpoints, parley_subject_keys")
            cur.execute("CREATE TABLE parley_events_plain (LIKE parley_events INCLUDING ALL)")
        for key in ("sealed", "plain"):
            use(key)
            with psycopg.connect(**conninfo(dbname)) as conn:
                total = build(conn, TARGET_EVENTS, seal=key == "sealed")
            readable = EventStore().count_after(Cursor.start())
            assert readable == total, (readable, total)
        for round_no in range(ROUNDS):
            for key in ("sealed", "plain") if round_no % 2 == 0 else ("plain", "sealed"):
                use(key)
                rate = rebuild_rate(total)
                rebuilds[key].append(rate)
                log(f"  round {round_no + 1} rebuild {key:6s}: {fmt_rate(rate)} events/s ({total:,} events)")
        events._personal.update(declared)
        connection.close()

    from bench.report import table, write_section

    c_sealed, c_plain = mean_rate(commands["sealed"]), mean_rate(commands["plain"])
    r_sealed = sum(rebuilds["sealed"]) / len(rebuilds["sealed"])
    r_plain = sum(rebuilds["plain"]) / len(rebuilds["plain"])
    rows: list[list[object]] = [
        ["`send_message`, 1 process (commands/s)", fmt_rate(c_sealed), fmt_rate(c_plain),
         f"{(1 - c_sealed / c_plain) * 100:+.1f}%"],
        [f"`rebuild(read_models())` of {TARGET_EVENTS:,} events (events/s)", fmt_rate(r_sealed), fmt_rate(r_plain),
         f"{(1 - r_sealed / r_plain) * 100:+.1f}%"],
    ]
    body = (
        "Personal fields sealed with each customer's key (AES-256-GCM, eventstore.keys) beside the same code "
        "with nothing declared personal, same run, same scratch database; commands as bench/commands.py "
        f"({ROUNDS} rounds, alternating order), rebuilds of bench/replay.py's mix ({ROUNDS} each, mean). "
        "Targets: within 15% on commands, rebuild at 20,000 events/s or more.\n\n"
        + table(["operation", "sealed", "plain", "cost"], rows) + "\n\n" + load_note(load_before)
    )
    write_section("privacy", "Sealing personal data (bench/privacy.py)", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
