"""Push delivery in a process: ``DeliveryWorker`` rounds on a pool of threads (workers.pool),
woken when the process manager queues rows; the pool also purges old rows."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from notifications.config import DeliveryConfig, push_configured
from notifications.outbox import NOTIFY_CHANNEL, queued
from notifications.worker import DeliveryWorker
from workers.pool import Pool, run_pool

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600.0


def push_pool(config: DeliveryConfig, *, threads: int, poll: float) -> Pool[DeliveryWorker]:
    return Pool(
        name="push delivery",
        make=lambda owner: DeliveryWorker(config, owner=owner, threads=threads),
        signal=queued,
        channel=NOTIFY_CHANNEL,
        threads=threads,
        poll=poll,
        chores_every=PURGE_EVERY_SECONDS,
    )


async def run_delivery_workers(stop: asyncio.Event, *, lanes: int | None = None, relay: bool = True) -> None:
    """Run push delivery until ``stop`` is set, on ``lanes`` threads (PUSH_DELIVERY_WORKERS);
    ``relay``: listen for other processes' wake-ups here (project.bootstrap listens once for all queues)."""
    if not push_configured():
        log.warning("VAPID_PRIVATE_KEY is not set: push delivery is off (python manage.py generate_vapid_keys)")
        await stop.wait()
        return
    threads = lanes or settings.PUSH_DELIVERY_WORKERS
    pool = push_pool(DeliveryConfig.from_settings(), threads=threads, poll=settings.PUSH_POLL_INTERVAL)
    await run_pool(pool, stop, relay=relay)
