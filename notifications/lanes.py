"""Push delivery lanes: ``DeliveryWorker``s run by workers.lanes (see there
for how lanes share wake-ups and poll); the first lane also purges old rows."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from notifications.config import DeliveryConfig, push_configured, utcnow
from notifications.outbox import NOTIFY_CHANNEL, queued
from notifications.worker import DeliveryWorker
from workers.lanes import Lanes, run_lanes

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600.0


def push_lanes(config: DeliveryConfig) -> Lanes[DeliveryWorker]:
    return Lanes(
        name="push delivery",
        make=lambda owner: DeliveryWorker(config, owner=owner),
        round=lambda worker: worker.run_once().progressed,
        next_due=lambda worker: worker.next_wake,
        now=utcnow,
        signal=queued,
        channel=NOTIFY_CHANNEL,
        chores=lambda worker: worker.purge(),
        chores_every=PURGE_EVERY_SECONDS,
    )


async def run_delivery_workers(stop: asyncio.Event, *, lanes: int | None = None) -> None:
    """Run push delivery until ``stop`` is set: ``lanes`` workers on threads of their own."""
    if not push_configured():
        log.warning("VAPID_PRIVATE_KEY is not set: push delivery is off (python manage.py generate_vapid_keys)")
        await stop.wait()
        return
    await run_lanes(push_lanes(DeliveryConfig.from_settings()), stop,
                    count=lanes or settings.PUSH_DELIVERY_WORKERS, poll=settings.PUSH_POLL_INTERVAL)
