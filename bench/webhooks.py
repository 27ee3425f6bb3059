"""Outbound webhook delivery throughput and end-to-end latency on PostgreSQL.

Everything posts to the same local receiver (``tests.support.webhookreceiver``:
a threading http.server that verifies every signature with the
standardwebhooks library, answers 204 and keeps connections open), with the
same bodies:

* the baseline: a bare urllib3 loop, one thread, no database, signing each
  body with standardwebhooks and POSTing it over a kept-open connection;
* the delivery workers as a process runs them (``run_webhook_workers``: the
  pool of workers.pool) draining outbox rows the webhook process manager
  recorded for real ``MessageSent`` events (one customer each, so every row
  heads its own lane): claim (``FOR UPDATE SKIP LOCKED``), the SSRF guard's
  lookup, sign, POST, mark; with 1 and with 4 threads. Between cells the
  rows are set back to pending, so every cell does the same work;
* end-to-end latency: ``send_message`` appends a ``MessageSent``; the
  pipeline and two webhook delivery threads run as the server runs them
  (``Worker`` and ``run_webhook_workers`` on one asyncio loop); measured from just before the
  append to the receiver having verified the request, one message at a time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/webhooks.py

BENCH_WEBHOOKS (default 1000) rows per throughput cell, BENCH_WEBHOOK_SAMPLES
(default 200) latency samples, BENCH_ROUNDS rounds (mean of rates).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROUNDS, load_note, loadavg, log, percentile, scratch_database  # noqa: E402
from bench.report import table, write_section  # noqa: E402

COUNT = int(os.environ.get("BENCH_WEBHOOKS", "1000"))
SAMPLES = int(os.environ.get("BENCH_WEBHOOK_SAMPLES", "200"))
BODY = "Your parcel left our warehouse this morning and should reach you on Tuesday."


def customer_says(customer_id: uuid.UUID) -> None:
    from chat.commands import Actor, SendMessage
    from chat.events import SenderKind
    from chat.handlers import send_message

    send_message(SendMessage(uuid.uuid4(), customer_id, Actor(SenderKind.CUSTOMER, str(customer_id), ""), BODY))


def new_customers(count: int) -> list[uuid.UUID]:
    from customers.services import customer_register

    return [customer_register(name=f"Customer {i}", email=f"c{i}@example.com").customer.id for i in range(count)]


def catch_up() -> None:
    """The read models, then the webhook process manager's group that follows them (it queues the deliveries)."""
    from project import bootstrap

    bootstrap.catch_up("pipeline", "webhooks")


def bare_loop(receiver: Any, secret: str, bodies: list[tuple[str, str]]) -> float:
    import urllib3

    from outbound.transport import signature_headers

    pool = urllib3.HTTPConnectionPool("127.0.0.1", int(receiver.host_port.split(":")[1]), maxsize=1, retries=False)
    start = time.perf_counter()
    for msg_id, body in bodies:
        headers = {**signature_headers([secret], msg_id, body, dt.datetime.now(dt.timezone.utc)),
                   "Content-Type": "application/json"}
        r = pool.urlopen("POST", "/hooks/parley", body=body.encode(), headers=headers, retries=False, redirect=False)
        assert r.status == 204, r.status
    elapsed = time.perf_counter() - start
    pool.close()
    return len(bodies) / elapsed


def analyze() -> None:
    """Statistics for the planner, as autovacuum keeps them on a running server (freshly
    written rows have none, and the claim would sort every pending row)."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("ANALYZE parley_webhook_deliveries")


def reset_outbox() -> None:
    from outbound.models import WebhookDelivery

    WebhookDelivery.objects.update(state="pending", attempts=0, finished_at=None, lease_owner="", lease_until=None,
                                   due_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))


def through_worker(receiver: Any, threads: int) -> float:
    """Webhooks per second through ``threads`` delivery threads, from their start to the last one verified."""
    from outbound.models import WebhookDelivery
    from outbound.worker import run_webhook_workers

    reset_outbox()
    total = WebhookDelivery.objects.count()
    before = len(receiver.accepted())
    finished, elapsed = threading.Event(), [0.0]

    def serve() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            start = time.perf_counter()
            task = asyncio.create_task(run_webhook_workers(stop, lanes=threads, relay=False))
            await asyncio.to_thread(receiver.wait_for_accepted, before + total, 120)
            elapsed[0] = time.perf_counter() - start
            stop.set()
            await task
            finished.set()

        asyncio.run(main())

    server = threading.Thread(target=serve)
    server.start()
    server.join()
    assert finished.is_set(), "the delivery workers did not finish"
    assert WebhookDelivery.objects.filter(state="delivered").count() == total
    return total / elapsed[0]


def latencies(receiver: Any, samples: int) -> list[float]:
    from outbound.worker import run_webhook_workers
    from project.bootstrap import pipeline, webhooks
    from workers.worker import Worker

    customers = new_customers(10)
    catch_up()
    stop_flag, ready = threading.Event(), threading.Event()

    def serve() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(Worker(pipeline(), announce=True).run(stop)),
                     asyncio.create_task(Worker(webhooks()).run(stop)),
                     asyncio.create_task(run_webhook_workers(stop, lanes=2))]
            ready.set()
            while not stop_flag.is_set():
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*tasks)

        asyncio.run(main())

    server = threading.Thread(target=serve)
    server.start()
    ready.wait()
    out = []
    try:
        time.sleep(0.5)
        for i in range(samples):
            before = len(receiver.accepted())
            t0 = time.perf_counter()
            customer_says(customers[i % len(customers)])
            receiver.wait_for_accepted(before + 1, timeout=30)
            out.append(time.perf_counter() - t0)
    finally:
        stop_flag.set()
        server.join(timeout=30)
    return out



def main() -> None:
    load_before = loadavg()
    from tests.support.webhookreceiver import WebhookReceiver

    with scratch_database("webhooks"), WebhookReceiver() as receiver:
        from django.conf import settings

        from outbound.endpoints import endpoint_register
        from outbound.models import WebhookDelivery
        from outbound.worker import per_endpoint

        settings.WEBHOOK_INSECURE_HOSTS = [receiver.host_port]
        receiver.secret = endpoint_register(url=receiver.url, events=["message.created"]).secret
        log(f"preparing {COUNT} outbox rows")
        for customer_id in new_customers(COUNT):
            customer_says(customer_id)
        catch_up()
        analyze()
        bodies = [(str(e), b) for e, b in WebhookDelivery.objects.values_list("event_id", "body")]
        rates: dict[str, list[float]] = {"bare": [], "w1": [], "w4": []}
        for r in range(ROUNDS):
            for cell in (["bare", "w1", "w4"] if r % 2 == 0 else ["w4", "w1", "bare"]):
                rate = bare_loop(receiver, receiver.secret, bodies) if cell == "bare" else through_worker(
                    receiver, 1 if cell == "w1" else 4)
                rates[cell].append(rate)
                log(f"round {r + 1}: {cell}: {rate:,.0f} webhooks/s")
        assert not [q for q in receiver.requests if q.error], "a request failed verification"
        mean = {k: statistics.mean(v) for k, v in rates.items()}
        log(f"measuring end-to-end latency over {SAMPLES} messages")
        lat = [v * 1000 for v in latencies(receiver, SAMPLES)]

    rows: list[list[object]] = [
        ["bare urllib3 loop, signed with standardwebhooks, 1 thread (baseline)", f"{mean['bare']:,.0f}", "1.00"],
        ["delivery workers, 1 thread", f"{mean['w1']:,.0f}", f"{mean['w1'] / mean['bare']:.2f}"],
        [f"delivery workers, 4 threads ({per_endpoint(4)} for the one endpoint)", f"{mean['w4']:,.0f}",
         f"{mean['w4'] / mean['bare']:.2f}"],
    ]
    body = f"""
Webhooks per second to a local receiver (a threading http.server in the
same process, so it shares the interpreter lock with the senders; it
keeps connections open, as receivers do) that verifies every signature
with the standardwebhooks library. {COUNT} deliveries per cell, one
customer each, mean of {ROUNDS} rounds. The workers run as a process runs
them (`run_webhook_workers`): a database thread claims rounds of up to 16
lane heads of one endpoint, each in one statement (`FOR UPDATE SKIP
LOCKED`, the endpoint's share picked, leased), and records the answers of
every round that finished since in one commit that does not wait for the
disk; the threads that send resolve and check the host (the SSRF guard),
sign, and POST to the checked address over connections they reuse. An
endpoint gets at most `WEBHOOK_ENDPOINT_CONCURRENCY` threads and never all
of them. The baseline signs and POSTs the same bodies over one kept-open
connection, with no database.

{table(["sender", "webhooks/s", "vs bare loop"], rows)}

End-to-end latency, `MessageSent` appended → request verified by the
receiver, through the read models' group, the webhook process manager's
group that follows it (it writes the row with its checkpoint, woken when
the read models move) and two delivery threads, on one asyncio loop, {len(lat)}
messages one at a time: p50 {percentile(lat, 0.5):.1f} ms, p99
{percentile(lat, 0.99):.1f} ms, max {max(lat):.1f} ms.

{load_note(load_before)}"""
    write_section("webhooks", "Outbound webhooks (bench/webhooks.py)", body)
    log(body)


if __name__ == "__main__":
    main()
