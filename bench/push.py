"""Push delivery throughput and end-to-end latency on PostgreSQL.

Everything sends to the same local Web Push service
(``tests.support.pushservice.PushService``: it verifies each VAPID JWT and
decrypts each aes128gcm body, in a process of its own, bench/push_peer.py,
so its work does not share this process's interpreter lock with the senders),
with the same payload size, TTL, Urgency and Topic:

* the baseline: a bare ``pywebpush.webpush()`` loop over prepared
  subscriptions, one thread, no database;
* the delivery worker (``notifications.worker.DeliveryWorker``) draining
  outbox rows the push process manager recorded for real ``MessageSent``
  events: claim (``FOR UPDATE SKIP LOCKED``), the "already read?" check on
  the message's stream, the push, the mark; with 1 and with 4 worker
  threads. Between cells the same rows are set back to pending, so every
  cell does the same work;
* end-to-end latency: ``send_message`` appends a ``MessageSent``; the
  pipeline (read models and the push process manager) and two delivery
  threads run as the server runs them (``Worker`` and ``run_delivery_workers``
  on one asyncio loop); measured from just before the append to the push
  service having decrypted and recorded the push, one message at a time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/push.py

BENCH_PUSHES (default 1000) rows per throughput cell, BENCH_PUSH_SAMPLES
(default 200) latency samples, BENCH_ROUNDS rounds (mean of rates).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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

PUSHES = int(os.environ.get("BENCH_PUSHES", "1000"))
SAMPLES = int(os.environ.get("BENCH_PUSH_SAMPLES", "200"))
SUBJECT = "mailto:bench@parley.test"
BODY = "Your parcel left our warehouse this morning and should reach you on Tuesday."


def configure(push: Any) -> Any:
    from django.conf import settings

    from notifications.vapid import generate_vapid_keys

    keys = generate_vapid_keys()
    settings.VAPID_PRIVATE_KEY = keys.private_key
    settings.VAPID_PUBLIC_KEY = keys.public_key
    settings.VAPID_SUBJECT = SUBJECT
    settings.PUSH_DELAY_SECONDS = 0.0
    settings.PUSH_ENDPOINT_INSECURE_HOSTS = [push.base_url.removeprefix("http://")]
    return keys


def register_devices(push: Any, count: int) -> list[tuple[uuid.UUID, Any]]:
    """``count`` customers with one subscription each (through the service, not HTTP)."""
    subs = [push.new_subscription() for _ in range(count)]
    return list(zip(register_subscriptions([s.to_json() for s in subs]), subs, strict=True))


def register_subscriptions(subscriptions: list[dict[str, Any]]) -> list[uuid.UUID]:
    """A customer per subscription (its ``PushSubscription.toJSON()``); their ids."""
    from customers.services import customer_register
    from notifications.subscriptions import subscription_register

    out = []
    for i, sub in enumerate(subscriptions):
        customer_id = customer_register(name=f"Push customer {i}").customer.id
        subscription_register(
            customer_id=customer_id, endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
        )
        out.append(customer_id)
    return out


class Peer:
    """The push service in a process of its own (bench/push_peer.py)."""

    def __init__(self, count: int) -> None:
        import subprocess
        import tempfile

        self.file = Path(tempfile.mkstemp(suffix=".json")[1])
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("push_peer.py")), str(count), str(self.file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        info = json.loads(self.file.read_text())
        self.base_url: str = info["base_url"]
        self.subscriptions: list[dict[str, Any]] = info["subscriptions"]

    def delivered(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        delivered, rejected = (int(x) for x in self.proc.stdout.readline().split())
        if rejected:
            raise SystemExit(f"the push service refused {rejected} pushes")
        return delivered

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.delivered() < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"expected {count} pushes at the service, got {self.delivered()}")
            time.sleep(0.01)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.file.unlink(missing_ok=True)


def agent_sends(customer_id: uuid.UUID) -> None:
    from chat.commands import Actor, SendMessage
    from chat.events import SenderKind
    from chat.handlers import send_message

    send_message(SendMessage(uuid.uuid4(), customer_id, Actor(SenderKind.AGENT, "1", "Grace"), BODY))


def catch_up() -> None:
    """The read models, then the push process manager that follows them, as the workers run them."""
    from notifications.process_manager import PUSH
    from project.bootstrap import group
    from readmodels.projections import PIPELINE

    group(PIPELINE).catch_up()
    group(PUSH).catch_up()


# -- throughput ----------------------------------------------------------------------


def bare_loop(peer: Peer, keys: Any, subs: list[dict[str, Any]]) -> float:
    """The naive baseline: pywebpush.webpush() in a loop, nothing else."""
    from pywebpush import webpush

    from notifications.payload import badge_payload, encode, topic_for
    from notifications.vapid import signer

    vapid = signer(keys.private_key)
    message = {
        "message_id": str(uuid.uuid4()), "sender_name": "Grace", "preview": BODY, "sent_at": "2026-01-01T00:00:00Z",
    }
    data = encode(badge_payload(unread=1, position=1, message=message)).decode()
    before = peer.delivered()
    start = time.perf_counter()
    for i, sub in enumerate(subs):
        webpush(
            sub, data, vapid_private_key=vapid, vapid_claims={"sub": SUBJECT}, ttl=86400, timeout=10,
            headers={"Urgency": "high", "Topic": topic_for(uuid.UUID(int=i))},
        )
    peer.wait_for(before + len(subs), timeout=60)
    return len(subs) / (time.perf_counter() - start)


def reset_outbox() -> int:
    from notifications.models import DeliveryState, PushDelivery, PushSubscription

    PushSubscription.objects.update(
        lease_owner="", lease_until=None, hold_until=None, badge_unread=0, badge_tx=None, badge_position=None
    )
    # A claim moves a row's due time to the end of its lease: due again at once.
    return PushDelivery.objects.update(state=DeliveryState.PENDING, attempts=0, failures=0, reason="", finished_at=None,
                                       lease_owner="", due_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))


def through_worker(peer: Peer, threads: int) -> float:
    from django.db import connection

    from notifications.config import DeliveryConfig
    from notifications.worker import DeliveryWorker

    rows = reset_outbox()
    config = DeliveryConfig.from_settings()
    before = peer.delivered()
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            worker = DeliveryWorker(config)
            barrier.wait()
            worker.drain()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    peer.wait_for(before + rows, timeout=60)
    elapsed = time.perf_counter() - start
    delivered = peer.delivered() - before
    if delivered != rows:
        raise SystemExit(f"expected {rows} pushes, the service got {delivered}")
    return rows / elapsed


# -- latency -----------------------------------------------------------------------------


def latencies(push: Any, samples: int) -> list[float]:
    """Seconds from just before the append to the push service recording the push."""
    from notifications.lanes import run_delivery_workers
    from notifications.process_manager import PUSH
    from project.bootstrap import group
    from readmodels.projections import PIPELINE
    from workers.worker import Worker

    devices = register_devices(push, 10)
    catch_up()  # start from a caught-up log, as a running server would be
    stop_flag = threading.Event()
    ready = threading.Event()

    def serve() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(Worker(group(PIPELINE), announce=True).run(stop)),
                asyncio.create_task(Worker(group(PUSH)).run(stop)),
                asyncio.create_task(run_delivery_workers(stop, lanes=2)),
            ]
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
        time.sleep(0.5)  # let the workers take their leases
        for i in range(samples):
            customer_id, sub = devices[i % len(devices)]
            before = len(push.deliveries(sub.id))
            t0 = time.time()
            agent_sends(customer_id)
            delivery = push.wait_for(before + 1, timeout=30, subscription_id=sub.id)[-1]
            out.append(delivery.received_at - t0)
    finally:
        stop_flag.set()
        server.join(timeout=30)
    return out



def main() -> None:
    load_before = loadavg()
    from tests.support.pushservice import PushService

    peer = Peer(2 * PUSHES)
    try:
        with scratch_database("push"), PushService() as push:
            from django.conf import settings

            keys = configure(push)
            settings.PUSH_ENDPOINT_INSECURE_HOSTS.append(peer.base_url.removeprefix("http://"))
            log(f"preparing {PUSHES} subscriptions and outbox rows")
            bare_subs = peer.subscriptions[:PUSHES]
            for customer_id in register_subscriptions(peer.subscriptions[PUSHES:]):
                agent_sends(customer_id)
            catch_up()

            rates: dict[str, list[float]] = {"bare": [], "w1": [], "w4": []}
            for r in range(ROUNDS):
                order = ["bare", "w1", "w4"] if r % 2 == 0 else ["w4", "w1", "bare"]
                for cell in order:
                    if cell == "bare":
                        rate = bare_loop(peer, keys, bare_subs)
                    else:
                        rate = through_worker(peer, 1 if cell == "w1" else 4)
                    rates[cell].append(rate)
                    log(f"round {r + 1}: {cell}: {rate:,.0f} pushes/s")
            mean = {k: statistics.mean(v) for k, v in rates.items()}
            log(f"measuring end-to-end latency over {SAMPLES} messages")
            lat = latencies(push, SAMPLES)
            poll = settings.PARLEY_POLL_INTERVAL
    finally:
        peer.close()

    rows: list[list[object]] = [
        ["bare `pywebpush.webpush()` loop, 1 thread (baseline)", f"{mean['bare']:,.0f}", "1.00"],
        ["delivery worker, 1 thread", f"{mean['w1']:,.0f}", f"{mean['w1'] / mean['bare']:.2f}"],
        ["delivery worker, 4 threads", f"{mean['w4']:,.0f}", f"{mean['w4'] / mean['bare']:.2f}"],
    ]
    ms = [v * 1000 for v in lat]
    body = f"""
Pushes per second to a local Web Push service that verifies every VAPID
signature and decrypts every aes128gcm body, in a process of its own (as a
real push service is elsewhere; it shares this machine's two cores). {PUSHES} pushes per cell, mean of {ROUNDS} rounds. The worker
does what production does: claims up to 16 devices with `FOR UPDATE SKIP
LOCKED` and reads the claimed messages' streams in the same transaction
("already read? edited?": one query per claim), encrypts each push
(pywebpush) with the VAPID header signed once per push service and the
connection kept open (TTL, Urgency, Topic), and marks the round's pushes
sent in one statement and one commit. The bare loop signs a VAPID JWT and
opens a connection for every push, as `pywebpush.webpush()` does.

{table(["sender", "pushes/s", "vs bare loop"], rows)}

The worker has bookkeeping the loop has not (the claim, and the marks: one
statement and one commit per round, so a crash can repeat at most that
round's pushes, each under the same Topic), and saves what the loop repeats
(a signature and a connection per push). Lanes overlap the database with the network waits;
on this machine the push service's own decryption shares the same cores and
GIL, which bounds the 4-thread figure.

End-to-end latency, `MessageSent` appended → push decrypted and recorded by
the push service, through the pipeline (read models and the push process
manager in one transaction) and two delivery lanes on one asyncio loop (as
`manage.py serve` runs them),
{len(ms)} messages sent one at a time (PARLEY_POLL_INTERVAL={poll:g} s, a
fallback only: an append wakes the pipeline, and the process manager wakes
a delivery lane after its commit).

{table(["p50", "p90", "p99", "max"], [[f"{percentile(ms, q):.1f} ms" for q in (0.5, 0.9, 0.99, 1.0)]])}

{load_note(load_before)}"""
    write_section("push", "Push delivery (bench/push.py)", body)


if __name__ == "__main__":
    main()
