"""The composition root: which consumers run, and how workers are started.

``serve`` (embedded mode) runs them on Daphne's own event loop, so the
in-memory channel layer reaches the sockets; ``runworkers`` runs them on a
loop of their own beside separate Daphne processes (Redis channel layer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterable, Sequence

from eventstore.partitions import Partition
from eventstore.runner import Consumer, ConsumerRunner, make_owner_id
from workers import wakeup
from workers.dbthreads import DatabaseThreads
from workers.worker import Worker

log = logging.getLogger(__name__)


#: The consumer groups that follow the read models: they read, for each
#: event, the rows the pipeline left as of it (readmodels.asof).
FOLLOWERS = ("push", "webhooks", "email-fallback")


def consumers(partition: Partition | None = None) -> list[Consumer]:
    """The pipeline's members: the read models (each event applied to every one in
    turn, the last recording the rows it left for the groups that follow), then
    the fan-out, which builds the batch's live frames from those rows."""
    from readmodels.asof import EventRowsProjection
    from readmodels.projections import ReadModels, read_models
    from realtime.fanout import RealtimeFanout

    return [
        ReadModels([*read_models(), EventRowsProjection(readers=FOLLOWERS, partition=partition)]),
        RealtimeFanout(partition),
    ]


def pipeline(*, owner: str | None = None, partition: Partition | None = None) -> ConsumerRunner:
    """The read models' consumer group and the live frames.

    Its writes (read models, the rows as of each event, the checkpoint) all
    follow from the log, so its commits need not wait for the disk: a
    database crash can only send it back a few batches, which it applies
    again (frames are published again and de-duplicated by position). The
    read models share its transaction on purpose: they are current to one
    position, the one every read answers with (docs/architecture.md).
    """
    from readmodels.projections import PIPELINE

    return ConsumerRunner(consumers(partition), name=PIPELINE, owner=owner, derived_only=True, partition=partition,
                          appends=False)


def workflow(*, owner: str | None = None, partition: Partition | None = None) -> ConsumerRunner:
    """The workflow process manager's own group: it appends events and
    schedules timers, so unlike the pipeline its commits are durable."""
    from conversations.process_manager import WORKFLOW, WorkflowProcessManager

    return ConsumerRunner([WorkflowProcessManager()], name=WORKFLOW, owner=owner, partition=partition, paced=True)


def push(*, owner: str | None = None, partition: Partition | None = None) -> ConsumerRunner:
    """The push process manager's own group, behind the read models: it queues
    pushes with the badge as of each event; a failure here stalls push alone."""
    from notifications.process_manager import PUSH, PushProcessManager
    from readmodels.projections import PIPELINE

    return ConsumerRunner([PushProcessManager()], name=PUSH, owner=owner, follows=PIPELINE, partition=partition,
                          appends=False)


def webhooks(*, owner: str | None = None, partition: Partition | None = None) -> ConsumerRunner:
    """The webhook process manager's own group, behind the read models."""
    from outbound.process_manager import WEBHOOKS, WebhookProcessManager
    from readmodels.projections import PIPELINE

    return ConsumerRunner([WebhookProcessManager()], name=WEBHOOKS, owner=owner, follows=PIPELINE,
                          partition=partition, appends=False)


def email_fallback(*, owner: str | None = None, partition: Partition | None = None) -> ConsumerRunner:
    """The email fallback process manager's own group, behind the read models: it
    schedules timers, so its commits are durable, and a rebuild of the read
    models never replays history into it (which would email old news)."""
    from notifications.fallback import EMAIL_FALLBACK, EmailFallbackProcessManager
    from readmodels.projections import PIPELINE

    return ConsumerRunner([EmailFallbackProcessManager()], name=EMAIL_FALLBACK, owner=owner, follows=PIPELINE,
                          partition=partition, appends=False)


#: Every consumer group of a deployment, by name: what each runs.
GROUPS: dict[str, tuple[Callable[..., ConsumerRunner], str]] = {
    "pipeline": (pipeline, "read models and live frames"),
    "workflow": (workflow, "conversation workflow: reopen, first response, auto-assign, snooze timers"),
    "push": (push, "push notifications (follows the pipeline)"),
    "webhooks": (webhooks, "outbound webhooks (follows the pipeline)"),
    "email-fallback": (email_fallback, "email fallback (follows the pipeline)"),
}


def declare_groups() -> None:
    """Tell the log which groups this deployment runs (status, /healthz, /metrics list them all)."""
    from eventstore import groups

    for name, (_, description) in GROUPS.items():
        groups.declare(name, description)


def group(name: str, *, owner: str | None = None, partition: Partition | None = None) -> ConsumerRunner:
    """A fresh runner of the group ``name`` (KeyError: no such group), of one partition of it."""
    make, _ = GROUPS[name]
    return make(owner=owner, partition=partition)


def runners(name: str, *, owner: str | None = None) -> list[ConsumerRunner]:
    """A fresh runner of each partition of the group ``name`` (one when the pipeline is not partitioned)."""
    from eventstore import partitions

    return [group(name, owner=owner, partition=p) for p in partitions.all_partitions()]


def catch_up(*names: str) -> int:
    """Run these groups (every partition of each, in order) until each has caught up
    with the log as it is now (commands and tests); returns the events they handled."""
    return sum(r.catch_up() for name in (names or tuple(GROUPS)) for r in runners(name))


def serve_metrics(bind: str) -> Callable[[], None]:
    """Serve this process's metrics on ``bind`` (host:port) for ``runworkers``, which has
    no HTTP server of its own; returns what stops it.

    Each scrape runs on a fresh thread of prometheus_client's server and
    reads the pipeline's checkpoint there, so that thread's database
    connection is closed after the scrape (else it would stay open, or on
    PostgreSQL never return to the pool).
    """
    from eventstore import groups
    from eventstore.metrics import CheckpointCollector
    from observability import exposition

    server, _ = exposition.serve(bind, exposition.registry(CheckpointCollector(groups.names, close_connection=True)))
    log.info("metrics at http://%s/metrics", bind)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


def chosen(names: Iterable[str] | None) -> tuple[str, ...]:
    """The groups a process runs, in the deployment's order (``GROUPS``): all of
    them for None. ValueError for an unknown name or none at all."""
    if names is None:
        return tuple(GROUPS)
    wanted = {n.strip() for n in names if n.strip()}
    unknown = sorted(wanted - set(GROUPS))
    if unknown:
        raise ValueError(f"no consumer group named {', '.join(unknown)}; the groups are {', '.join(GROUPS)}")
    if not wanted:
        raise ValueError(f"name at least one consumer group of {', '.join(GROUPS)}")
    return tuple(n for n in GROUPS if n in wanted)


async def start_partition(
    partition: Partition | None, leader: ConsumerRunner, stop: asyncio.Event, *,
    groups: Sequence[str] = tuple(GROUPS),
) -> list[asyncio.Task[None]]:
    """Start the workers of ``groups`` for one partition (the whole log when unpartitioned):
    ``leader`` is the runner of the first of them, whose lease claimed the
    partition. The pipeline runs on a database thread of its own (the live
    path); every other group here shares one (their batches are short). The
    groups that follow the pipeline wake when it moves: in-process when they
    run here, through Redis (or NOTIFY) when they run elsewhere."""
    from readmodels.projections import PIPELINE
    from realtime.fanout import RealtimeFanout

    suffix = partition.suffix() if partition is not None else ""
    owner = leader.owner
    runners = {leader.name: leader} | {
        name: group(name, owner=f"{owner}:{name}", partition=partition) for name in groups if name != leader.name
    }
    tasks = []
    pipe = runners.pop(PIPELINE, None)
    if pipe is not None:
        fanout = next(c for c in pipe.consumers if isinstance(c, RealtimeFanout))
        followers = [r for r in runners.values() if r.follows == pipe.name]
        tasks += [
            asyncio.create_task(Worker(pipe, announce=True, followers=followers).run(stop), name=pipe.name),
            asyncio.create_task(fanout.heartbeat(stop, lambda: pipe.cursor), name="heartbeat" + suffix),
        ]
    if runners:
        shared = DatabaseThreads(1, f"consumers{suffix}")

        async def run_sharing() -> None:
            try:
                await asyncio.gather(*(Worker(r, thread=shared).run(stop) for r in runners.values()))
            finally:  # after every one of them released its lease on it
                await asyncio.to_thread(shared.close_connections)
                shared.shutdown()

        tasks.append(asyncio.create_task(run_sharing(), name="groups" + suffix))
    return tasks


async def run_workers(
    stop: asyncio.Event, *, delivery: bool = True, groups: Sequence[str] | None = None, jobs: bool = True,
) -> None:
    """Run consumer groups (by default every one: the pipeline, the workflow,
    push, webhook and email fallback process managers; each partition this
    process holds), and unless ``jobs`` is false the timers, the email sender
    (and unless ``delivery`` is false the push and webhook delivery workers)
    until ``stop`` is set. One listener carries every other process's
    wake-ups: appends, the pipeline's checkpoint moving (for the groups that
    follow it), and rows queued on each queue (workers.jobs).

    ``groups`` lets a deployment run the live pipeline in processes (or on
    machines) of its own and the rest elsewhere (``runworkers --groups``,
    docs/operations.md); processes that run the same groups share their
    partitions (workers.partitions)."""
    from asgiref.sync import sync_to_async

    from conversations.process_manager import WORKFLOW
    from eventstore import partitions
    from eventstore.store import EventStore
    from notifications import mailer
    from notifications.outbox import PUSH
    from outbound.outbox import WEBHOOKS
    from project.gcfreeze import AFTER_START_SECONDS, freeze_startup_objects
    from readmodels.projections import PIPELINE
    from workers import timers

    names = chosen(groups)
    await sync_to_async(EventStore().check_transaction_ids)()
    if jobs:
        from project.privacy import schedule_retention

        # PARLEY_RETENTION_DAYS: the first run (each run schedules the next).
        await sync_to_async(schedule_retention)(dt.datetime.now(dt.timezone.utc))
    for name in names:
        await sync_to_async(partitions.check_layout)(name)
    count = partitions.count()
    start = functools.partial(start_partition, groups=names)
    if count == 1:
        tasks = await start(None, group(names[0], owner=make_owner_id()), stop)
    else:
        from workers.partitions import run_share

        owner = make_owner_id()
        tasks = [asyncio.create_task(run_share(
            groups=names, count=count, owner=owner, stop=stop, start=start,
            make_leader=lambda p: group(names[0], owner=f"{owner}:{p.index}", partition=p),
        ), name="partitions")]
    # Once the groups have built what they build lazily, out of the collector's full passes (project/gcfreeze.py).
    asyncio.get_running_loop().call_later(AFTER_START_SECONDS, freeze_startup_objects)
    channels: dict[str, wakeup.Signal] = {}
    if PIPELINE in names or WORKFLOW in names:  # the groups that read the log as it is appended
        channels[wakeup.APPENDS_CHANNEL] = wakeup.appended
    if set(FOLLOWERS) & set(names):
        for name in partitions.names(PIPELINE):  # every partition: which ones this process holds changes
            channels[wakeup.advance_channel(name)] = wakeup.advanced(name)
    if jobs:
        tasks += [
            asyncio.create_task(timers.run(stop, relay=False), name="timers"),
            asyncio.create_task(mailer.run(stop, relay=False), name="email"),
        ]
        channels.update({timers.TIMERS.channel: timers.scheduled, mailer.EMAIL.channel: mailer.queued})
        if delivery:
            from notifications.lanes import run_delivery_workers
            from outbound.worker import run_webhook_workers

            tasks.append(asyncio.create_task(run_delivery_workers(stop, relay=False), name="push-delivery"))
            tasks.append(asyncio.create_task(run_webhook_workers(stop, relay=False), name="webhook-delivery"))
            channels.update({PUSH.channel: PUSH.signal, WEBHOOKS.channel: WEBHOOKS.signal})
    tasks.append(asyncio.create_task(wakeup.relay_wakeups(stop, channels), name="listen"))
    log.info("workers running: %s (groups: %s)", ", ".join(t.get_name() for t in tasks), ", ".join(names))
    await asyncio.gather(*tasks)
