"""Webhook delivery workers: claim due rows, sign, POST, mark; and the loop that runs them.

At least once: a row is marked ``delivered`` only after a 2xx answer. A
worker that dies between the answer and the mark leaves the row leased;
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
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from eventstore.runner import make_owner_id
from outbound import outbox
from outbound.models import WebhookDelivery
from outbound.transport import Outcome, PinnedTransport, signature_headers
from workers.lanes import Lanes, run_lanes

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome: ...


@dataclass(frozen=True)
class WebhookConfig:
    timeout: float = 10.0
    lease_seconds: float = 60.0
    batch: int = 16
    backoff_base: float = 5.0
    backoff_cap: float = 3600.0

    @classmethod
    def from_settings(cls) -> WebhookConfig:
        return cls(
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS, lease_seconds=settings.WEBHOOK_LEASE_SECONDS,
            batch=settings.WEBHOOK_CLAIM_BATCH, backoff_base=settings.WEBHOOK_BACKOFF_BASE_SECONDS,
            backoff_cap=settings.WEBHOOK_BACKOFF_CAP_SECONDS,
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
    """Claims due heads of lanes and delivers them; ``clock`` lets tests move time."""

    def __init__(
        self, config: WebhookConfig | None = None, *, owner: str | None = None, clock: Clock = utcnow,
        transport: Transport | None = None,
    ) -> None:
        self.config = config or WebhookConfig.from_settings()
        self.owner = owner or make_owner_id()
        self.clock = clock
        self.transport: Transport = transport or PinnedTransport(timeout=self.config.timeout)
        self.stopping = threading.Event()

    def run_once(self) -> RunResult:
        result = RunResult()
        rows = outbox.claim(self.owner, self.clock(), batch=self.config.batch, lease_seconds=self.config.lease_seconds)
        done: set[int] = set()
        try:
            for row in rows:
                if self.stopping.is_set():
                    break
                self._deliver(row, result)
                done.add(row.pk)
        finally:
            outbox.release(self.owner, [r.pk for r in rows if r.pk not in done])
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

    def _deliver(self, row: WebhookDelivery, result: RunResult) -> None:
        endpoint = row.endpoint
        now = self.clock()
        if endpoint.disabled_at is not None:
            outbox.disable(endpoint, reason=endpoint.disabled_reason, now=now)
            return
        secrets = [endpoint.secret]
        if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
            secrets.append(endpoint.previous_secret)
        msg_id = str(row.event_id)
        headers = signature_headers(secrets, msg_id, row.body, utcnow())
        outcome = self.transport.post(endpoint.url, row.body.encode(), headers)
        result.attempts += 1
        now = self.clock()
        if outcome.kind == "delivered":
            outbox.delivered(row, status=outcome.status or 200, now=now)
            result.delivered += 1
        elif outcome.kind == "gone":
            log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint.pk)
            outbox.disable(endpoint, reason=f"the receiver answered 410 Gone at delivery {row.pk}", now=now)
        else:
            at = now + dt.timedelta(seconds=self.backoff(row.attempts + 1))
            if outbox.retry(row, status=outcome.status, reason=outcome.detail, now=now, at=at):
                log.info("webhook delivery %s of event %s: %s; retrying at %s", row.pk, msg_id, outcome.detail, at)
            else:
                log.warning("webhook delivery %s of event %s failed for good: %s", row.pk, msg_id, outcome.detail)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * 2 ** max(0, attempts - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def release_all(self) -> None:
        outbox.release_all(self.owner)

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()


def webhook_lanes(config: WebhookConfig) -> Lanes[WebhookWorker]:
    return Lanes(
        name="webhook delivery",
        make=lambda owner: WebhookWorker(config, owner=owner),
        round=lambda worker: bool(worker.run_once().attempts),
        next_due=lambda worker: outbox.next_due(utcnow()),
        now=utcnow,
        signal=outbox.queued,
        channel=outbox.NOTIFY_CHANNEL,
    )


async def run_webhook_workers(stop: asyncio.Event, *, lanes: int | None = None) -> None:
    """Deliver webhooks until ``stop`` is set: ``lanes`` workers on threads of their own (workers.lanes)."""
    await run_lanes(webhook_lanes(WebhookConfig.from_settings()), stop,
                    count=lanes or settings.WEBHOOK_DELIVERY_WORKERS, poll=settings.WEBHOOK_POLL_INTERVAL)
