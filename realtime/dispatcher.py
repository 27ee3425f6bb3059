"""The dispatcher: one per web process, it hands the log's frames to this process's sockets.

How a logged event reaches a socket:

* The pipeline (one active instance, in ``runworkers`` or ``serve``) commits
  a batch, then publishes the batch's frames, with the cursor the batch
  started from (``prev``) and the one it ended at (``end``), to one
  channel-layer group that every web process's dispatcher listens to. Every
  second it also publishes a heartbeat with its committed cursor.
* The dispatcher keeps ``cursor``: it has handed every event up to there to
  its sockets. A batch that continues from there is handed on as it is. A
  batch or heartbeat that starts beyond it means publications were lost
  (Redis restarted, a pipeline crashed between commit and publish): the
  dispatcher reads the missing stretch from the log itself, builds the same
  frames, and hands them on first.
* While it hears nothing at all (Redis down, or no pipeline running), it
  reads the pipeline's checkpoint from the database twice a second and fills
  from the log. It starts at once when it sees the channel layer fail (the
  core layer's receive raises; the pub/sub layer's subscription connection
  drops), and after ``SILENCE`` seconds without a batch or heartbeat
  otherwise (a hung Redis, a stopped pipeline).

So the channel layer is a fast path and never the guarantee: every socket
gets every event of its audience, in log order, exactly once, whatever
happens to Redis or to the workers, and without a round trip to the client.
A socket is sent ``resync`` only when this dispatcher lost track of what it
delivered (its own loop failed and started over).

Sockets never touch the channel layer themselves: one subscription per
process carries the log's frames and the ephemeral frames (typing,
presence) for every socket of the process, so Redis being down costs the
websocket handshake nothing.

The part that keeps ``cursor`` and fills gaps from the log is ``LogTail``
(realtime.logtail), a base of ``Dispatcher``; this module holds the rest of
it (its life, the channel layer, the loop that takes in publications, the
revocation sweep, ephemeral frames) and the process's dispatchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer

from accounts.principals import Credential, revoked_among
from eventstore import partitions
from eventstore.events import Cursor
from eventstore.store import EventStore
from observability.logs import event_fields
from observability.metrics import FRAMES_EPHEMERAL
from readmodels.projections import PIPELINE
from realtime import frames
from realtime.frames import AGENTS, Envelope
from realtime.logtail import DISPATCHER, Listener, LogTail, Stats, db

log = logging.getLogger(__name__)

#: The channel-layer group every web process's dispatcher listens to for a
#: partition's batches (one per partition: with the channel layer sharded over
#: several Redis servers, partitions publish through different ones).
FANOUT_GROUP = "parley.fanout"
#: The group of typing and presence (ephemeral frames).
EPHEMERAL_GROUP = "parley.ephemeral"


def fanout_group(partition: int = 0, count: int = 1) -> str:
    """The group a partition's batches and heartbeats go through."""
    return FANOUT_GROUP if count == 1 else f"{FANOUT_GROUP}.{partition}of{count}"


def groups_of(count: int) -> list[str]:
    """Every group a dispatcher of a pipeline in ``count`` partitions listens to."""
    return [fanout_group(p, count) for p in range(count)] + [EPHEMERAL_GROUP]
#: Seconds without a batch or heartbeat before the dispatcher reads the log itself.
SILENCE = 3.0
#: How often a dispatcher that hears nothing reads the pipeline's checkpoint.
TAIL_INTERVAL = 0.5
#: Seconds between renewals of the group membership (the core layer expires it).
REJOIN_EVERY = 600.0
#: Seconds between checks that sockets still stand on valid credentials (agents', pop-out windows').
REVOCATION_INTERVAL = 2.0
#: Seconds a publication to the channel layer may take before it is given up.
PUBLISH_TIMEOUT = 1.0
#: Seconds a cancelled task of the dispatcher has to end, and how many times it is cancelled.
STOP_GRACE = 1.0
STOP_TRIES = 5


class Dispatcher(LogTail):
    def __init__(self) -> None:
        self.audiences: dict[str, set[Listener]] = defaultdict(set)
        self.cursor: Cursor | None = None
        self.partition_count = partitions.count()
        self.received: dict[int, Cursor] = {}
        self.held: list[Envelope] = []
        self.erasures: dict[str, float] = {}
        self._mismatch_logged = False
        self.process_id = uuid.uuid4().hex
        self.stats = Stats()
        self.channel: str | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._start: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._store = EventStore()
        self._tailing = False
        self._layer_failed = False  # the core layer's receive raised, and has not received since
        self._background: set[asyncio.Task[bool]] = set()

    # -- sockets ---------------------------------------------------------------------

    async def register(self, listener: Listener) -> Cursor:
        """Start handing ``listener`` its audience's events; returns the cursor they start after."""
        await self.ensure_started()
        assert self.cursor is not None
        self.audiences[listener.audience].add(listener)
        return self.cursor

    def unregister(self, listener: Listener) -> None:
        members = self.audiences.get(listener.audience)
        if members is not None:
            members.discard(listener)
            if not members:
                del self.audiences[listener.audience]

    def listeners(self) -> Iterable[Listener]:
        return [m for members in self.audiences.values() for m in members]

    # -- life ------------------------------------------------------------------------

    async def ensure_started(self) -> None:
        if self._start is None:
            self._start = asyncio.get_running_loop().create_task(self._begin())
        await asyncio.shield(self._start)

    async def _begin(self) -> None:
        try:
            # Where every partition has come to: no partition's events before it are missing.
            self._start_at(await db(partitions.watermark)(PIPELINE, self.partition_count))
        except BaseException:
            self._start = None  # the next socket tries again
            raise
        self.stats.heard_at = time.monotonic()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._receive(), name="dispatcher-receive"),
            loop.create_task(self._run(), name="dispatcher"),
            loop.create_task(self._sweep(), name="dispatcher-revocations"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # A task gets time to clean up (the pub/sub layer unsubscribes as its receive
            # is cancelled); one that swallowed its cancellation is told again.
            for _ in range(STOP_TRIES):
                await asyncio.wait({task}, timeout=STOP_GRACE)
                if task.done():
                    break
                task.cancel()
            if not task.done():
                log.warning("dispatcher task %s did not stop when cancelled; left running", task.get_name())
            elif not task.cancelled() and task.exception() is not None:
                log.debug("dispatcher task %s ended with an error", task.get_name(), exc_info=task.exception())
        self._tasks = []
        layer = get_channel_layer()
        if layer is not None and self.channel is not None:
            try:
                for group in groups_of(self.partition_count):
                    await layer.group_discard(group, self.channel)
            except Exception:
                log.debug("could not leave the fan-out group", exc_info=True)

    @property
    def following(self) -> bool:
        """Whether publications arrive (else the dispatcher reads the log itself): heard
        within ``SILENCE``, and the channel layer not seen failing."""
        if self._layer_failed or not _subscribed(get_channel_layer()):
            return False
        return time.monotonic() - self.stats.heard_at < SILENCE

    # -- the channel layer -------------------------------------------------------------

    async def _receive(self) -> None:
        """Move the layer's messages into the inbox.

        Never cancelled while the process lives: cancelling a pub/sub
        receive unsubscribes the channel. The pub/sub layer re-subscribes by
        itself after Redis comes back; the core layer's receive raises while
        Redis is down, and its group membership (which expires, and is lost
        when Redis restarts empty) is renewed after that and every few minutes.
        """
        layer = get_channel_layer()
        if layer is None:
            return
        failures = 0
        joined_at: float | None = None
        while True:
            try:
                if self.channel is None:
                    self.channel = await layer.new_channel()
                if joined_at is None or time.monotonic() - joined_at > REJOIN_EVERY:
                    for group in groups_of(self.partition_count):
                        await layer.group_add(group, self.channel)
                    joined_at = time.monotonic()
                self._inbox.put_nowait(await layer.receive(self.channel))
                failures = 0
                self._layer_failed = False
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                joined_at = None
                self._layer_failed = True  # publications cannot come: read the log from the next tick
                if failures == 1:
                    log.warning("the dispatcher cannot reach the channel layer; its sockets are served from the log", exc_info=True)
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))

    async def publish(self, message: dict[str, Any]) -> bool:
        """Send an ephemeral message to every process's dispatcher (best effort)."""
        return await publish({**message, "origin": self.process_id})

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            message: dict[str, Any] | None = None
            # asyncio.timeout, not wait_for: under Python 3.11, wait_for drops a
            # cancellation that comes as the inbox hands over a message, and the
            # dispatcher would then outlive stop() (measured: a test's teardown waited 5 s).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TAIL_INTERVAL):
                    message = await self._inbox.get()
            try:
                if message is None:
                    if not self.following:
                        if not self._tailing:
                            self._tailing = True
                            log.warning("no publications from the pipeline (the channel layer is down, or silent "
                                        "for %.0f s): reading the log directly", SILENCE)
                        for part, until in (await db(partitions.checkpoints)(PIPELINE, self.partition_count)).items():
                            await self._fill(until, part.index)
                    continue
                if self._tailing and message.get("type") in ("parley.batch", "parley.beat"):
                    self._tailing = False
                    log.info("publications from the pipeline arrive again")
                await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Nothing was handed on past ``cursor``; the next batch,
                # heartbeat or silent tick fills from there again.
                self._log_failure(message)
                await asyncio.sleep(TAIL_INTERVAL)

    def _log_failure(self, message: dict[str, Any] | None) -> None:
        """Log (from an ``except`` block) what the dispatcher failed to hand on: the
        stretch of the log from its cursor to the message's end (structured fields too)."""
        kind = (message or {}).get("type", "a silent tick")
        end = (message or {}).get("end")
        after = self.cursor.position if self.cursor is not None else None
        until = int(end[1]) if isinstance(end, (list, tuple)) and len(end) == 2 else None
        log.exception(
            "dispatcher could not handle %s (events after position %s up to position %s); "
            "it fills them from the log at the next batch, heartbeat or tick",
            kind, after, until if until is not None else "?",
            extra=event_fields(DISPATCHER, None, until, message_type=kind, after_position=after),
        )

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "parley.batch":
            self.stats.heard_at = time.monotonic()
            self.stats.batches += 1
            partition = self._partition(message)
            if partition is not None:
                await self._on_batch(Cursor(*message["prev"]), Cursor(*message["end"]), message["envelopes"], partition)
        elif kind == "parley.beat":
            self.stats.heard_at = time.monotonic()
            self.stats.beats += 1
            partition = self._partition(message)
            if partition is not None:
                await self._fill(Cursor(*message["end"]), partition)
        elif kind == "parley.ephemeral":
            if message.get("origin") != self.process_id:
                await self.deliver_ephemeral(message)

    def _partition(self, message: dict[str, Any]) -> int | None:
        """The partition a publication comes from; None (and a warning, once) when the
        publisher counts partitions differently than this process: a deployment
        whose processes disagree on PARLEY_PIPELINE_PARTITIONS. The log fills in."""
        index, count = message.get("partition") or (0, 1)
        if count == self.partition_count and 0 <= index < count:
            return int(index)
        if not self._mismatch_logged:
            self._mismatch_logged = True
            log.error("a pipeline publishes with %s partitions, this web process expects %s "
                      "(PARLEY_PIPELINE_PARTITIONS must be the same everywhere); its frames are read from the log",
                      count, self.partition_count)
        return None

    async def resync_everyone(self) -> None:
        """This dispatcher lost track: every socket is told, and resumes."""
        self.stats.resyncs += 1
        for listener in self.listeners():
            await listener.resync()

    # -- revocation -------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Close sockets whose credentials were revoked (token revoked, signed
        out, agent deactivated, the widget's pop-out window signed out): one
        query per kind every two seconds, and only while such sockets are
        connected."""
        while True:
            await asyncio.sleep(REVOCATION_INTERVAL)
            holders: dict[Credential, list[Listener]] = defaultdict(list)
            for listener in self.listeners():
                credential = listener.principal.credential if listener.principal is not None else None
                if credential is not None:
                    holders[credential].append(listener)
            if not holders:
                continue
            try:
                revoked = await db(revoked_among)(list(holders))
            except Exception:
                log.warning("could not check agents' credentials; trying again", exc_info=True)
                continue
            for credential in revoked:
                for listener in holders[credential]:
                    await listener.revoke("your credentials were revoked or your session ended; sign in again")

    # -- ephemeral frames (typing, presence) ------------------------------------------------

    async def deliver_ephemeral(self, message: dict[str, Any]) -> None:
        """Hand an ephemeral frame to this process's sockets of its audience (or one socket)."""
        sender = message.get("from")
        to = message.get("to")
        for listener in list(self.audiences.get(message["audience"], ())):
            if listener.listener_id == sender or (to is not None and listener.listener_id != to):
                continue
            await listener.send_text(message["frame"])
            FRAMES_EPHEMERAL.inc()
        if message.get("who"):
            await self._answer_who(message)

    async def _answer_who(self, message: dict[str, Any]) -> None:
        """A newly connected agent asks who is online: each local agent answers it."""
        for listener in list(self.audiences.get(AGENTS, ())):
            if listener.listener_id == message.get("from"):
                continue
            answer = getattr(listener, "presence_frame", None)
            if answer is None:
                continue
            reply = {"type": "parley.ephemeral", "audience": AGENTS, "frame": answer, "to": message.get("from")}
            if message.get("origin") in (None, self.process_id):
                await self.deliver_ephemeral(reply)
            else:
                await self.publish(reply)

    async def ephemeral(self, audience: str, frame: dict[str, Any], *, sender: str, who: bool = False) -> None:
        """Send an ephemeral frame to an audience: here at once, to other processes
        in the background (a slow or hung Redis never holds up the socket)."""
        message = {"type": "parley.ephemeral", "audience": audience, "frame": frames.encode(frame), "from": sender, "who": who}
        await self.deliver_ephemeral(message)
        task = asyncio.get_running_loop().create_task(self.publish(message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _subscribed(layer: Any) -> bool:
    """Whether the pub/sub layer's subscriptions are connected (True for other layers).

    Its receive never raises: each Redis server's task reconnects by itself
    while Redis is down, and messages simply stop coming. Its connection says
    so at once (attributes of channels_redis 4 and redis-py; if they are not
    there, the silence timeout still applies, and the pub/sub case of
    tests/integration/test_dispatcher_redis_stops.py fails: it waits far
    less than that timeout for a frame sent while its Redis is down).
    """
    for shard in getattr(layer, "_shards", None) or ():
        pubsub = getattr(shard, "_pubsub", None)
        if pubsub is None or not getattr(pubsub, "subscribed", False):
            continue  # nothing subscribed through this server
        connection = getattr(pubsub, "connection", None)
        if connection is None or not getattr(connection, "is_connected", True):
            return False
    return True


async def publish(message: dict[str, Any]) -> bool:
    """Send a message to every process's dispatcher; False if the layer did not take it.

    Bounded in time: a hung Redis (the connection open, nothing answered)
    must not hold up the pipeline or a socket. A message lost this way
    costs time, never an event: dispatchers fill gaps from the log.
    """
    layer = get_channel_layer()
    if layer is None:
        return False
    if message.get("type") == "parley.ephemeral":
        group = EPHEMERAL_GROUP
    else:
        index, count = message.get("partition") or (0, 1)
        group = fanout_group(index, count)
    try:
        await asyncio.wait_for(layer.group_send(group, message), timeout=PUBLISH_TIMEOUT)
        return True
    except Exception:
        log.debug("could not publish %s", message.get("type"), exc_info=True)
        return False


_dispatchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dispatcher] = weakref.WeakKeyDictionary()


def get_dispatcher() -> Dispatcher:
    """This process's dispatcher (one per event loop: Daphne has one)."""
    loop = asyncio.get_running_loop()
    found = _dispatchers.get(loop)
    if found is None:
        found = _dispatchers[loop] = Dispatcher()
    return found


async def stop_dispatchers() -> None:
    """Stop the dispatcher of the running loop and close its threads' connections (tests, shutdown)."""
    found = _dispatchers.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.stop()
    await asyncio.to_thread(db.close_connections)
