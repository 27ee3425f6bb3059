"""Webhook delivery workers: claim due rows, sign, POST, record; and the pool that runs them.

A job of workers.pool: rounds of one endpoint's due rows are claimed
(outbound.outbox) on the pool's database thread, posted by a work thread
outside any transaction, and recorded with every other round that finished
meanwhile, in one commit. A process works on at most
``WEBHOOK_ENDPOINT_CONCURRENCY`` rounds of one endpoint at once (and never
on all its threads for one endpoint), so a receiver that hangs holds only
those threads. However many receivers hang, one thread is kept for
endpoints with nothing in flight whose last round was quick (under half
the request timeout): every other endpoint keeps its deliveries flowing.

At least once: a row is marked ``delivered`` only after a 2xx answer. A
worker that dies between the answer and the record leaves the row leased;
when the lease lapses another worker sends it again, with the same body and
``webhook-id``, which receivers de-duplicate on.

Answers: 2xx delivered; 410 disables the endpoint (its pending rows fail);
anything else, a redirect (never followed), a network error or no answer
within the timeout is retried with exponential backoff and jitter until
the row's give-up time (``WEBHOOK_RETRY_FOR_SECONDS`` after it was
queued), then marked ``failed`` with the last reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from eventstore.commits import relax_commits
from eventstore.runner import make_owner_id
from outbound import outbox
from outbound.models import WebhookDelivery
from outbound.outbox import Outcome
from outbound.transport import Outcome as Answer
from outbound.transport import PinnedTransport, signature_headers
from workers import jobs
from workers.pool import Pool, run_pool, run_round

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

#: How often the pool deletes deliveries finished longer ago than WEBHOOK_RETENTION_DAYS.
PURGE_EVERY_SECONDS = 600.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer: ...


@dataclass(frozen=True)
class WebhookConfig:
    timeout: float = 10.0
    lease_seconds: float = 60.0
    batch: int = 16
    backoff_base: float = 5.0
    backoff_cap: float = 3600.0
    retention: dt.timedelta = dt.timedelta(days=30)

    @classmethod
    def from_settings(cls) -> WebhookConfig:
        return cls(
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS, lease_seconds=settings.WEBHOOK_LEASE_SECONDS,
            batch=settings.WEBHOOK_CLAIM_BATCH, backoff_base=settings.WEBHOOK_BACKOFF_BASE_SECONDS,
            backoff_cap=settings.WEBHOOK_BACKOFF_CAP_SECONDS,
            retention=dt.timedelta(days=settings.WEBHOOK_RETENTION_DAYS),
        )

    def __post_init__(self) -> None:
        # A lease must outlive the requests made under it, or a second worker
        # could send a lane's next row while the first is still waiting.
        if self.lease_seconds < 3 * self.timeout:
            raise ValueError("WEBHOOK_LEASE_SECONDS must be at least three request timeouts")


@dataclass
class RunResult:
    attempts: int = 0
    delivered: int = 0


class WebhookWorker:
    """Claims due heads of lanes and delivers them (a job of workers.pool); ``clock`` lets tests move time.

    ``per_endpoint`` caps the rounds of one endpoint this worker's pool
    works on at once (None: no cap). One transport serves every work thread.
    """

    def __init__(
        self, config: WebhookConfig | None = None, *, owner: str | None = None, clock: Clock = utcnow,
        transport: Transport | None = None, threads: int = 1, per_endpoint: int | None = None,
    ) -> None:
        self.config = config or WebhookConfig.from_settings()
        self.owner = owner or make_owner_id()
        self.clock = clock
        self.per_endpoint = per_endpoint
        self.transport: Transport = transport or PinnedTransport(timeout=self.config.timeout, connections=threads)
        self.stopping = threading.Event()

    # -- the pool's job (workers.pool)

    def now(self) -> dt.datetime:
        return self.clock()

    def claim(self, rounds: int, busy: Mapping[Hashable, int]) -> list[jobs.Round[WebhookDelivery]]:
        # Marks and leases are at-least-once bookkeeping: a database crash that
        # loses the last moment of them sends those rows again, under the same
        # webhook-id. Waiting for the disk at every commit cost most of a
        # delivery's time, and varied with whatever else the server flushed.
        relax_commits()
        return outbox.claim(
            self.owner, self.clock(), rounds=rounds, batch=self.config.batch, lease_seconds=self.config.lease_seconds,
            busy=dict(busy), per_endpoint=self.per_endpoint,
        )

    def perform(self, work: jobs.Round[WebhookDelivery]) -> Outcome:
        outcome = Outcome(work)
        # No request starts unless it can end (time out) well within the lease.
        deadline = work.deadline - 2 * self.config.timeout
        for row in work.rows():
            if self.stopping.is_set() or time.monotonic() >= deadline or row.endpoint_id in outcome.disabled:
                break
            self._deliver(row, outcome)
        return outcome

    def settle(self, outcomes: list[Outcome]) -> None:
        relax_commits()
        outbox.settle(outcomes, owner=self.owner, now=self.clock())

    def release(self, work: list[jobs.Round[WebhookDelivery]]) -> None:
        outbox.release(self.owner, work)

    def report(self, work: jobs.Round[WebhookDelivery], error: BaseException) -> None:
        log.error("webhook deliveries %s failed", [r.pk for r in work.rows()], exc_info=error)

    def next_due(self) -> dt.datetime | None:
        return outbox.next_due(self.clock())

    def chores(self) -> int:
        return outbox.purge(self.clock() - self.config.retention)

    def release_all(self) -> None:
        outbox.release_all(self.owner, self.clock())

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    # -- in the calling thread

    def run_once(self) -> RunResult:
        result = RunResult()
        for outcome in run_round(self):
            result.attempts += outcome.attempts
            result.delivered += sum(1 for d in outcome.done if d.state == "delivered")
        return result

    def drain(self, max_rounds: int = 10_000) -> RunResult:
        """Run rounds until nothing is due (tests, benchmarks)."""
        total = RunResult()
        for _ in range(max_rounds):
            r = self.run_once()
            total.attempts += r.attempts
            total.delivered += r.delivered
            if not r.attempts:
                break
        return total

    # -- one row

    def _deliver(self, row: WebhookDelivery, outcome: Outcome) -> None:
        endpoint = row.endpoint
        now = self.clock()
        if endpoint.disabled_at is not None:
            outcome.disabled[endpoint.pk] = endpoint.disabled_reason
            return
        secrets = [endpoint.secret]
        if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
            secrets.append(endpoint.previous_secret)
        msg_id = str(row.event_id)
        headers = signature_headers(secrets, msg_id, row.body, utcnow())
        answer: Answer = self.transport.post(endpoint.url, row.body.encode(), headers)
        outcome.attempts += 1
        now = self.clock()
        if answer.kind == "delivered":
            outcome.done.append(outbox.delivered(row, status=answer.status or 200))
        elif answer.kind == "gone":
            log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint.pk)
            outcome.disabled[endpoint.pk] = f"the receiver answered 410 Gone at delivery {row.pk}"
        else:
            at = now + dt.timedelta(seconds=self.backoff(row.attempts + 1))
            decided = outbox.retry(row, status=answer.status, reason=answer.detail, at=at)
            if isinstance(decided, jobs.Retry):
                outcome.retry.append(decided)
                log.info("webhook delivery %s of event %s: %s; retrying at %s", row.pk, msg_id, answer.detail, at)
            else:
                outcome.done.append(decided)
                log.warning("webhook delivery %s of event %s failed for good: %s", row.pk, msg_id, answer.detail)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        return jobs.retry_delay(attempts, base=self.config.backoff_base, cap=self.config.backoff_cap).total_seconds()


def per_endpoint(threads: int) -> int:
    """Rounds of one endpoint a process works on at once: WEBHOOK_ENDPOINT_CONCURRENCY, and
    never every thread, so one endpoint that hangs always leaves the others some."""
    return max(1, min(settings.WEBHOOK_ENDPOINT_CONCURRENCY, threads - 1))


def webhook_pool(config: WebhookConfig, *, threads: int, poll: float) -> Pool[WebhookWorker]:
    """The delivery pool: per-endpoint caps, and (with two threads or more) one thread kept for
    endpoints with nothing in flight whose last round took less than half the request timeout,
    which hung or slow receivers, however many, never hold."""
    cap = per_endpoint(threads)
    return Pool(
        name="webhook delivery",
        make=lambda owner: WebhookWorker(config, owner=owner, threads=threads, per_endpoint=cap),
        signal=outbox.queued,
        channel=outbox.NOTIFY_CHANNEL,
        threads=threads,
        poll=poll,
        per_group=cap,
        chores_every=PURGE_EVERY_SECONDS,
        reserve=1 if threads > 1 else 0,
        slow_after=config.timeout / 2,
    )


async def run_webhook_workers(stop: asyncio.Event, *, lanes: int | None = None, relay: bool = True) -> None:
    """Deliver webhooks until ``stop`` is set, on ``lanes`` threads (WEBHOOK_DELIVERY_WORKERS; workers.pool);
    ``relay``: listen for other processes' wake-ups here (project.bootstrap listens once for all queues)."""
    threads = lanes or settings.WEBHOOK_DELIVERY_WORKERS
    pool = webhook_pool(WebhookConfig.from_settings(), threads=threads, poll=settings.WEBHOOK_POLL_INTERVAL)
    await run_pool(pool, stop, relay=relay)
