"""The loop that runs a consumer group forever (eventstore.runner has the group).

A ``Worker`` stands by while another instance holds the group's lease,
takes it when it runs out, and then processes batches as wake-ups announce
appends, falling back to a poll for a lost wake-up.

A group that follows another (the process managers behind the read models)
is woken when that group's checkpoint moves, not by appends, which it could
not read yet. It, and the workflow, take a batch at most every
``PARLEY_FOLLOWER_INTERVAL`` seconds (``ConsumerRunner.paced``), so that
under load one transaction handles many events: a push, a webhook or an
assignment a few hundredths of a second later costs nobody anything, a
transaction per message costs the database and, in one process, the
interpreter the read models' batches wait for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from django.conf import settings

from eventstore.runner import ConsumerRunner, LostLease, after_commit
from workers import wakeup
from workers.dbthreads import DatabaseThreads
from workers.loop import Delay

log = logging.getLogger(__name__)


class Worker:
    """Runs a ConsumerRunner forever on an asyncio loop.

    Database work runs on a thread of its own that keeps its connection
    between batches (workers.dbthreads). Effects run
    on the loop, which is the server's loop in the embedded mode so that
    in-memory channel-layer sends reach its sockets.
    """

    #: Longest wait for a retry when committed events sit behind the read barrier.
    BLOCKED_MAX_WAIT = 0.05

    def __init__(
        self, runner: ConsumerRunner, *, poll_interval: float | None = None, announce: bool = False,
        thread: DatabaseThreads | None = None, followers: Sequence[ConsumerRunner] | None = None,
    ) -> None:
        """``thread``: a database thread shared with other workers (the groups that follow
        a partition's pipeline share one, so a process holds two connections per
        partition, not one per group); by default the worker has one of its own.

        ``followers``: every group that follows this one, when all of them run
        in this process (project.bootstrap.start_partition). While each holds
        its lease here, the in-process signal wakes them all and the
        announcement to other processes is left out (a Redis publish per batch,
        and a message for every listening process to read and drop). Standbys
        elsewhere need no wake-up: they look for the lease on their own
        schedule, and can take it only once it ran out, when it no longer
        counts as held here."""
        self.runner = runner
        self.poll_interval = poll_interval if poll_interval is not None else settings.PARLEY_POLL_INTERVAL
        #: Tell the groups that follow this one when its checkpoint moves.
        self.announce = announce
        self.followers = tuple(followers or ())
        #: Seconds between two batches of a following group (0: none).
        self.min_interval = float(settings.PARLEY_FOLLOWER_INTERVAL) if runner.paced else 0.0
        self._owns_thread = thread is None
        self._thread = thread if thread is not None else DatabaseThreads(1, f"consumer-{runner.name}")
        self._blocked = 0
        self._last_batch = 0.0
        #: Whether the last try for the lease found another instance holding it (logged once).
        self._standing_by = False

    async def _db(self, fn, *args):  # type: ignore[no-untyped-def]
        return await self._thread(fn)(*args)

    def _stand_by(self) -> Delay:
        """Another instance holds the lease: wait a third of its term, saying so once
        (again only after this one has held it in between)."""
        if not self._standing_by:
            self._standing_by = True
            log.info("consumer %s: another instance holds its lease; %s stands by", self.runner.name,
                     self.runner.owner, extra={"consumer": self.runner.name, "owner": self.runner.owner})
        return settings.PARLEY_LEASE_SECONDS / 3

    async def step(self) -> Delay:
        runner = self.runner
        if self.min_interval:
            wait = self._last_batch + self.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # let a few more events gather for one transaction
        try:
            if runner.cursor is None:
                if not await self._db(runner.acquire_lease):
                    return self._stand_by()
                self._standing_by = False
            progress = await self._db(runner.process_batch)
        except LostLease:
            return self.poll_interval
        if progress.moved:
            self._last_batch = time.monotonic()
            if self.announce:
                wakeup.announce_advance(runner.name, elsewhere=not self._followers_held_here())
        await after_commit(progress.effects, runner.name, progress.span)
        if progress.full:
            self._blocked = 0
            return 0  # more is waiting
        if progress.blocked:
            # Committed events wait for an older transaction to end; no
            # wake-up will announce that, so look again shortly.
            self._blocked += 1
            return min(self.BLOCKED_MAX_WAIT, 0.001 * 2**self._blocked)
        self._blocked = 0
        # Caught up: a wake-up (one may have come in meanwhile) brings the
        # next events; the lease needs renewing at half time.
        return min(self.poll_interval, settings.PARLEY_LEASE_SECONDS / 2)

    def _followers_held_here(self) -> bool:
        """Whether every group that follows this one holds its lease in this process (see __init__)."""
        return bool(self.followers) and all(f.holds_lease() for f in self.followers)

    async def run(self, stop: asyncio.Event) -> None:
        signal = wakeup.advanced(self.runner.follows) if self.runner.follows else wakeup.appended
        try:
            await wakeup.run_woken_by(signal, self.step, stop=stop, idle=self.poll_interval,
                                      name=f"consumer {self.runner.name}")
        finally:
            try:
                if self.runner.cursor is not None:
                    await self._db(self.runner.release_lease)
            except Exception:
                log.exception("consumer %s could not release its lease", self.runner.name)
            finally:
                if self._owns_thread:
                    await asyncio.to_thread(self._thread.close_connections)
                    self._thread.shutdown()


async def listen_for_appends(stop: asyncio.Event) -> None:
    """Relay PostgreSQL NOTIFYs of appends in other processes to this process's waiters."""
    await wakeup.relay_wakeups(stop, {wakeup.APPENDS_CHANNEL: wakeup.appended})
