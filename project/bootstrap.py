"""The composition root: which consumers run, and how workers are started.

``serve`` (embedded mode) runs them on Daphne's own event loop, so the
in-memory channel layer reaches the sockets; ``runworkers`` runs them on a
loop of their own beside separate Daphne processes (Redis channel layer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from eventstore.runner import Consumer, ConsumerRunner, Worker, listen_for_appends, make_owner_id

log = logging.getLogger(__name__)


def consumers() -> list[Consumer]:
    """Every consumer of the log, in dependency order."""
    from chat.fanout import RealtimeFanout
    from notifications.process_manager import PushProcessManager
    from readmodels.projections import all_projections

    return [*all_projections(), RealtimeFanout(), PushProcessManager()]


async def run_workers(stop: asyncio.Event, *, only: Sequence[str] | None = None, delivery: bool = True) -> None:
    """Run every consumer (and the push delivery workers) until ``stop`` is set."""
    from asgiref.sync import sync_to_async

    from eventstore.store import EventStore

    await sync_to_async(EventStore().check_transaction_ids)()
    owner = make_owner_id()
    chosen = [c for c in consumers() if not only or c.name in only]
    tasks = [asyncio.create_task(Worker(ConsumerRunner(c, owner=owner)).run(stop), name=c.name) for c in chosen]
    tasks.append(asyncio.create_task(listen_for_appends(stop), name="listen"))
    if delivery:
        from notifications.delivery import run_delivery_workers

        tasks.append(asyncio.create_task(run_delivery_workers(stop), name="push-delivery"))
    log.info("workers running: %s", ", ".join(t.get_name() for t in tasks))
    await asyncio.gather(*tasks)
