"""The composition root: which consumers run, and how workers are started.

``serve`` (embedded mode) runs them on Daphne's own event loop, so the
in-memory channel layer reaches the sockets; ``runworkers`` runs them on a
loop of their own beside separate Daphne processes (Redis channel layer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from eventstore.runner import Consumer, ConsumerRunner, make_owner_id
from workers import wakeup
from workers.worker import Worker

log = logging.getLogger(__name__)


def consumers() -> list[Consumer]:
    """The pipeline's members, in the order each batch reaches them: the read
    models first, then the process managers that read them, then the fan-out,
    which builds frames from them. The webhook process manager comes first:
    it reads the read models as of the batch's start and applies the batch
    itself (outbound.process_manager)."""
    from notifications.process_manager import PushProcessManager
    from outbound.process_manager import WebhookProcessManager
    from readmodels.projections import all_projections
    from realtime.fanout import RealtimeFanout

    return [WebhookProcessManager(), *all_projections(), PushProcessManager(), RealtimeFanout()]


def pipeline(*, owner: str | None = None) -> ConsumerRunner:
    """The one consumer group that feeds every consumer of the log.

    Its writes (read models, push outbox rows, the checkpoint) all follow
    from the log, so its commits need not wait for the disk: a database
    crash can only send it back a few batches, which it applies again
    (frames are published again and de-duplicated by position; outbox rows
    are unique per event and device).
    """
    from readmodels.projections import PIPELINE

    return ConsumerRunner(consumers(), name=PIPELINE, owner=owner, derived_only=True)


def workflow(*, owner: str | None = None) -> ConsumerRunner:
    """The workflow process manager's own group: it appends events and
    schedules timers, so unlike the pipeline its commits are durable."""
    from conversations.process_manager import WORKFLOW, WorkflowProcessManager

    return ConsumerRunner([WorkflowProcessManager()], name=WORKFLOW, owner=owner)


def email_fallback(*, owner: str | None = None) -> ConsumerRunner:
    """The email fallback process manager's own group: it schedules timers,
    so its commits are durable, and a rebuild of the read models never
    replays history into it (which would email old news)."""
    from notifications.fallback import EMAIL_FALLBACK, EmailFallbackProcessManager

    return ConsumerRunner([EmailFallbackProcessManager()], name=EMAIL_FALLBACK, owner=owner)


def serve_metrics(bind: str) -> Callable[[], None]:
    """Serve this process's metrics on ``bind`` (host:port) for ``runworkers``, which has
    no HTTP server of its own; returns what stops it.

    Each scrape runs on a fresh thread of prometheus_client's server and
    reads the pipeline's checkpoint there, so that thread's database
    connection is closed after the scrape (else it would stay open, or on
    PostgreSQL never return to the pool).
    """
    from eventstore.metrics import CheckpointCollector
    from observability import exposition
    from readmodels.projections import PIPELINE

    server, _ = exposition.serve(bind, exposition.registry(CheckpointCollector([PIPELINE], close_connection=True)))
    log.info("metrics at http://%s/metrics", bind)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


async def run_workers(stop: asyncio.Event, *, delivery: bool = True) -> None:
    """Run the pipeline, the workflow and email fallback process managers, the
    timers, the email sender (and the push and webhook delivery workers) until
    ``stop`` is set. One listener carries every other process's wake-ups:
    appends, and rows queued on each queue (workers.jobs)."""
    from asgiref.sync import sync_to_async

    from eventstore.store import EventStore
    from notifications import mailer
    from notifications.outbox import PUSH
    from outbound.outbox import WEBHOOKS
    from realtime.fanout import RealtimeFanout
    from workers import timers

    await sync_to_async(EventStore().check_transaction_ids)()
    runner = pipeline(owner=make_owner_id())
    process_manager = workflow(owner=make_owner_id())
    fallback = email_fallback(owner=make_owner_id())
    fanout = next(c for c in runner.consumers if isinstance(c, RealtimeFanout))
    tasks = [
        asyncio.create_task(Worker(runner).run(stop), name=runner.name),
        asyncio.create_task(Worker(process_manager).run(stop), name=process_manager.name),
        asyncio.create_task(Worker(fallback).run(stop), name=fallback.name),
        asyncio.create_task(timers.run(stop, relay=False), name="timers"),
        asyncio.create_task(mailer.run(stop, relay=False), name="email"),
        asyncio.create_task(fanout.heartbeat(stop, lambda: runner.cursor), name="heartbeat"),
    ]
    channels = {wakeup.APPENDS_CHANNEL: wakeup.appended, timers.TIMERS.channel: timers.scheduled,
                mailer.EMAIL.channel: mailer.queued}
    if delivery:
        from notifications.lanes import run_delivery_workers
        from outbound.worker import run_webhook_workers

        tasks.append(asyncio.create_task(run_delivery_workers(stop, relay=False), name="push-delivery"))
        tasks.append(asyncio.create_task(run_webhook_workers(stop, relay=False), name="webhook-delivery"))
        channels.update({PUSH.channel: PUSH.signal, WEBHOOKS.channel: WEBHOOKS.signal})
    tasks.append(asyncio.create_task(wakeup.relay_wakeups(stop, channels), name="listen"))
    log.info("workers running: %s", ", ".join(t.get_name() for t in tasks))
    await asyncio.gather(*tasks)
