"""The write path: messages accepted per second by one web process, beside a bare Django write.

Two Daphne processes on the same machine and database, the same client:

* **Parley**: ``POST /api/v1/messages`` as a customer (bearer customer token),
  through ``project.asgi:application`` with production settings (every
  middleware, the send budget, the command handler's append), no workers;
* **baseline**: a bare Daphne + Django view (bench/bare_write_asgi.py) that
  verifies a signed bearer token and INSERTs one row.

The client: BENCH_WRITE_CLIENTS threads (default 8), each with one keep-alive
connection, sending as fast as answers come for BENCH_SECONDS per round, the
two servers alternating for BENCH_ROUNDS rounds. Figures: accepted sends per
second and the median and p99 answer time; the ratio is Parley over the
baseline (the target: at least 0.5).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/writepath.py
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROUNDS,
    SECONDS,
    fmt_rate,
    load_note,
    loadavg,
    log,
    percentile,
    scratch_database,
    url_for,
)

CLIENTS = int(os.environ.get("BENCH_WRITE_CLIENTS", "8"))
CUSTOMERS = 64
PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{app} did not start")


def hammer(port: int, path: str, tokens: list[str], seconds: float) -> tuple[int, list[float], list[int]]:
    """CLIENTS threads POSTing new messages; (accepted, answer times, other statuses)."""
    accepted = [0] * CLIENTS
    times: list[list[float]] = [[] for _ in range(CLIENTS)]
    odd: list[list[int]] = [[] for _ in range(CLIENTS)]
    deadline = time.monotonic() + seconds

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = 0
        while time.monotonic() < deadline:
            token = tokens[(k + CLIENTS * i) % len(tokens)]
            body = json.dumps({"message_id": str(uuid.uuid4()), "body": f"hello {k} {i}"})
            t0 = time.perf_counter()
            conn.request("POST", path, body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            times[k].append(time.perf_counter() - t0)
            if response.status == 201:
                accepted[k] += 1
            else:
                odd[k].append(response.status)
            i += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(accepted), [x for ts in times for x in ts], [s for ss in odd for s in ss]


def main() -> int:
    load_before = loadavg()
    log(f"write path: {CLIENTS} clients, {SECONDS:.0f} s a round, {ROUNDS} rounds")
    with scratch_database("writepath") as dbname:
        from django.db import connection

        from accounts.tokens import issue_customer_token
        from customers.services import customer_register

        with connection.cursor() as c:
            c.execute("CREATE TABLE bench_bare_writes (id uuid PRIMARY KEY, customer_id uuid NOT NULL, body text NOT NULL)")
        customers = [customer_register(name=f"Writer {i}").customer.id for i in range(CUSTOMERS)]
        parley_tokens = [issue_customer_token(c) for c in customers]
        env = {**os.environ, "DATABASE_URL": url_for(dbname), "PARLEY_CACHE_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
               "PARLEY_CHANNEL_PREFIX": f"bench-{uuid.uuid4().hex[:6]}"}
        connection.close()
        from bench import bare_write_asgi

        bare_tokens = [bare_write_asgi.token_for(str(c)) for c in customers]
        parley, parley_port = serve("project.asgi:application", env)
        bare, bare_port = serve("bench.bare_write_asgi:application", env)
        results: dict[str, list[tuple[float, list[float]]]] = {"parley": [], "bare": []}
        try:
            hammer(parley_port, "/api/v1/messages", parley_tokens, 1.0)  # warm both up
            hammer(bare_port, "/send", bare_tokens, 1.0)
            for r in range(ROUNDS):
                order = [("bare", bare_port, "/send", bare_tokens), ("parley", parley_port, "/api/v1/messages", parley_tokens)]
                for name, port, path, tokens in order if r % 2 == 0 else order[::-1]:
                    n, times, odd = hammer(port, path, tokens, SECONDS)
                    if odd:
                        raise SystemExit(f"{name}: unexpected answers {sorted(set(odd))}")
                    results[name].append((n / SECONDS, times))
                    log(f"  {name}: {fmt_rate(n / SECONDS)} sends/s, p50 {percentile(times, 0.5) * 1000:.1f} ms")
        finally:
            for p in (parley, bare):
                p.terminate()
                p.wait(timeout=20)

    def summary(name: str) -> tuple[float, float, float]:
        rates = [r for r, _ in results[name]]
        times = [t for _, ts in results[name] for t in ts]
        return sum(rates) / len(rates), percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000

    from bench.report import table, write_section

    p_rate, p50, p99 = summary("parley")
    b_rate, b50, b99 = summary("bare")
    rows = [
        ["baseline: bare Daphne + Django view (signed bearer token, one INSERT)", fmt_rate(b_rate), f"{b50:.1f}",
         f"{b99:.1f}", "1.00"],
        ["**Parley `POST /api/v1/messages`** (customer token, production settings)", f"**{fmt_rate(p_rate)}**",
         f"{p50:.1f}", f"{p99:.1f}", f"**{p_rate / b_rate:.2f}**"],
    ]
    body = (
        f"One Daphne process each, the same PostgreSQL, {CLIENTS} client threads with keep-alive connections sending "
        f"new messages as fast as the answers come, {ROUNDS} rounds of {SECONDS:.0f} s alternating the servers "
        "(figures are their mean). Parley runs with production settings and no workers (appends only).\n\n"
        + table(["server", "sends/s", "p50 ms", "p99 ms", "vs baseline"], rows)
        + "\n"
    )
    body += "\n" + load_note(load_before)
    write_section("writepath", "The write path: sends per web process (bench/writepath.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
