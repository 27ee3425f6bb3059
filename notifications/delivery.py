"""The delivery worker: sends the outbox as Web Push, once per row.

Work is claimed per *device* (a subscription row), not per outbox row: the
claim takes up to ``batch`` subscriptions that have due rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite, whose single
writer already serialises the claim transaction, by a conditional UPDATE)
and leases them for ``lease_seconds``. So any number of workers can run,
each device's pushes leave one at a time and in log order, and a Topic
replacement at the push service can never put an older count over a newer
one. Each push then happens outside any transaction, and its row is marked
``sent`` right after the push service accepted it.

At-least-once edge: a worker that dies after the push service answered 201
but before its mark committed leaves the row pending; once the lease runs
out another worker sends it again. That one push may arrive twice, with
the same payload and Topic (so if the first is still queued the second
replaces it). A row marked ``sent`` is never sent again: claims only take
``pending`` rows, and the mark is conditional on ``pending``.

Per push: a fresh ``vapid_claims`` dict (pywebpush writes ``aud``/``exp``
into it), a ``timeout``, ``TTL`` > 0, ``Urgency`` and ``Topic``. Answers:
201/202 sent; 404/410 the subscription is gone (deleted with its rows);
429 hold the device until Retry-After; 5xx and network errors back off
exponentially with jitter, then park the row as ``dead`` with the reason;
other 4xx are refused for good (``dead``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from pywebpush import WebPushException, webpush

from chat.domain import ChatMessage, stream_id
from eventstore import wakeup
from eventstore.runner import make_owner_id
from eventstore.store import EventStore
from notifications import payload as payloads
from notifications.models import DeliveryState, PushDelivery, PushSubscription
from notifications.process_manager import NOTIFY_CHANNEL, push_ttl
from notifications.vapid import signer

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


# Mark a row sent and record the device's new badge (only while the device
# still belongs to that customer), and hand the device back if asked: one
# statement, so one round trip and one commit per push on PostgreSQL.
_MARK_SENT_SQL = """
WITH sent AS (
    UPDATE parley_push_deliveries
    SET state = 'sent', finished_at = %(now)s, attempts = attempts + 1, reason = ''
    WHERE id = %(row)s AND state = 'pending'
    RETURNING id
), counted AS (
    SELECT EXISTS (SELECT 1 FROM sent) AND s.customer_id = %(customer)s AS yes
    FROM parley_push_subscriptions s WHERE s.id = %(sub)s
)
UPDATE parley_push_subscriptions SET
    badge_unread = CASE WHEN counted.yes THEN %(unread)s ELSE badge_unread END,
    badge_tx = CASE WHEN counted.yes THEN %(tx)s ELSE badge_tx END,
    badge_position = CASE WHEN counted.yes THEN %(position)s ELSE badge_position END,
    hold_until = CASE WHEN counted.yes THEN NULL ELSE hold_until END,
    lease_owner = CASE WHEN %(release)s AND lease_owner = %(owner)s THEN '' ELSE lease_owner END,
    lease_until = CASE WHEN %(release)s AND lease_owner = %(owner)s THEN NULL ELSE lease_until END
FROM counted
WHERE id = %(sub)s
"""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryConfig:
    """Knobs of the worker; ``from_settings`` reads optional ``PUSH_*`` settings."""

    private_key: str
    subject: str
    ttl: int = 24 * 3600
    timeout: float = 10.0  # seconds, per request (connect and read)
    lease_seconds: float = 60.0
    batch: int = 16  # devices per claim
    sends_per_device: int = 10  # per claim; a backlog continues in the next claim
    max_failures: int = 8  # 5xx / network errors before a row is parked as dead
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    max_retry_after: float = 3600.0
    retention: dt.timedelta = field(default=dt.timedelta(days=7))

    @classmethod
    def from_settings(cls, **overrides: Any) -> DeliveryConfig:
        values: dict[str, Any] = {
            "private_key": settings.VAPID_PRIVATE_KEY,
            "subject": settings.VAPID_SUBJECT,
            "ttl": push_ttl(),
            "timeout": settings.PUSH_TIMEOUT_SECONDS,
            "lease_seconds": settings.PUSH_LEASE_SECONDS,
            "max_failures": settings.PUSH_MAX_FAILURES,
            "backoff_base": settings.PUSH_BACKOFF_BASE_SECONDS,
        }
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if self.ttl <= 0:
            raise ValueError("TTL must be positive")
        # A device's lease must outlive the sends made under it, or a second
        # worker could take the device over while the first is still sending.
        if self.lease_seconds < 3 * self.timeout:
            raise ValueError("lease_seconds must be at least three request timeouts")


def push_configured() -> bool:
    return bool(settings.VAPID_PRIVATE_KEY)


# -- the transport -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the push service made of one push."""

    kind: Literal["sent", "gone", "throttled", "retry", "refused"]
    detail: str = ""
    retry_after: float | None = None


class Transport(Protocol):
    def send(
        self, subscription_info: dict[str, Any], data: bytes, *, urgency: str, topic: str
    ) -> Outcome: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebPushTransport:
    """pywebpush over one keep-alive ``requests.Session`` (one per worker thread)."""

    def __init__(self, config: DeliveryConfig) -> None:
        self.config = config
        self._vapid = signer(config.private_key)
        self._session = requests.Session()
        # Proxies from the environment are read once here, not on every
        # request (which is what trust_env would do).
        self._session.trust_env = False
        self._session.proxies = urllib.request.getproxies()

    def send(self, subscription_info: dict[str, Any], data: bytes, *, urgency: str, topic: str) -> Outcome:
        try:
            webpush(
                subscription_info,
                data,  # type: ignore[arg-type]  # bytes are sent as they are
                vapid_private_key=self._vapid,
                # Fresh per call: pywebpush writes aud (from this endpoint) and exp into it.
                vapid_claims={"sub": self.config.subject},
                content_encoding="aes128gcm",
                ttl=self.config.ttl,
                timeout=self.config.timeout,
                headers={"Urgency": urgency, "Topic": topic},
                requests_session=self._session,
            )
        except WebPushException as exc:
            return _classify(exc)
        except requests.Timeout as exc:
            # Ambiguous: the service may have accepted it. Retrying risks one
            # duplicate (same Topic), giving up risks a lost badge; we retry.
            return Outcome("retry", f"timeout: {exc}"[:300])
        except requests.RequestException as exc:
            return Outcome("retry", f"network: {type(exc).__name__}: {exc}"[:300])
        except Exception as exc:
            # Not the push service's answer (say, encryption failed): retried
            # like a failure, so a row that can never go ends up dead, not looping.
            log.exception("push to %s failed before an answer", subscription_info.get("endpoint"))
            return Outcome("retry", f"error: {type(exc).__name__}: {exc}"[:300])
        return Outcome("sent")

    def close(self) -> None:
        self._session.close()


def _classify(exc: WebPushException) -> Outcome:
    status = exc.status_code
    body = ""
    if exc.response is not None:
        try:
            body = exc.response.text[:200]
        except Exception:  # a reason string is best effort
            body = ""
    detail = f"{status}: {body}".strip()[:300] if status else str(exc.message)[:300]
    retry_after = parse_retry_after(exc.retry_after)
    if status in (404, 410):
        return Outcome("gone", detail)
    if status == 429:
        return Outcome("throttled", detail, retry_after)
    if status is not None and status >= 500:
        return Outcome("retry", detail, retry_after)
    return Outcome("refused", detail)


# -- the worker -----------------------------------------------------------------------


@dataclass
class Lane:
    """A claimed device and its due rows, in log reading order."""

    subscription: PushSubscription
    rows: list[PushDelivery]


@dataclass
class RunResult:
    devices: int = 0  # claimed
    pushes: int = 0  # requests made to push services
    sent: int = 0
    finished: int = 0  # rows that reached a final state, sent included

    @property
    def progressed(self) -> bool:
        return bool(self.pushes or self.finished)


class DeliveryWorker:
    """Claims devices with due rows and sends them. Synchronous; one per thread.

    ``clock`` is the time the worker acts at (due, lease and hold times); tests
    hand in their own to move time without sleeping.
    """

    def __init__(
        self,
        config: DeliveryConfig | None = None,
        *,
        owner: str | None = None,
        clock: Clock = utcnow,
        transport: Transport | None = None,
        store: EventStore | None = None,
    ) -> None:
        self.config = config or DeliveryConfig.from_settings()
        self.owner = owner or make_owner_id()
        self.clock = clock
        self.transport = transport or WebPushTransport(self.config)
        self.store = store or EventStore()
        #: Set from another thread to make a running batch stop between pushes.
        self.stopping = threading.Event()

    # -- one round

    def run_once(self) -> RunResult:
        """Claim a batch of devices, push their due rows, release them."""
        now = self.clock()
        started = time.monotonic()
        result = RunResult()
        lanes = self._claim(now)
        result.devices = len(lanes)
        read_cache: dict[Any, ChatMessage | None] = {}
        try:
            for i, lane in enumerate(lanes):
                if self.stopping.is_set() or not self._within_lease(started):
                    self._release([ln.subscription.pk for ln in lanes[i:]])
                    break
                self._deliver(lane, now, started, read_cache, result)
        except BaseException:
            self._release([ln.subscription.pk for ln in lanes])
            raise
        return result

    def drain(self, max_rounds: int = 10_000) -> RunResult:
        """Run rounds until nothing is due (for tests, commands and benchmarks)."""
        total = RunResult()
        for _ in range(max_rounds):
            r = self.run_once()
            total.devices += r.devices
            total.pushes += r.pushes
            total.sent += r.sent
            total.finished += r.finished
            if not r.progressed:
                break
        return total

    def _within_lease(self, started: float) -> bool:
        # Leave room for one more request (and its retry of the connection)
        # before the lease could lapse under us.
        return time.monotonic() - started < self.config.lease_seconds - 2 * self.config.timeout

    # -- claiming

    def _claim(self, now: dt.datetime) -> list[Lane]:
        """Lease up to ``batch`` devices whose oldest pending row is due, with
        their due rows. A device's rows go in log order (the process manager
        inserts them in reading order, so in id order): one held back by
        PUSH_DELAY_SECONDS holds back the rows behind it."""
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        not_held = Q(hold_until__isnull=True) | Q(hold_until__lte=now)
        pending = PushDelivery.objects.filter(state=DeliveryState.PENDING)
        waiting_before = pending.filter(
            subscription_id=OuterRef("subscription_id"), due_at__gt=now, id__lt=OuterRef("id")
        )
        ready = pending.filter(due_at__lte=now).filter(~Exists(waiting_before))
        with transaction.atomic():
            # PostgreSQL: devices another worker is claiming are skipped, not
            # waited for. SQLite ignores FOR UPDATE; its write transaction is
            # exclusive anyway, and the conditional UPDATE below is the claim.
            candidates = list(
                PushSubscription.objects.select_for_update(skip_locked=True)
                .filter(free, not_held, pk__in=Subquery(ready.values("subscription_id")))
                .values_list("pk", flat=True)[: self.config.batch]
            )
            if not candidates:
                return []
            lease_until = now + dt.timedelta(seconds=self.config.lease_seconds)
            PushSubscription.objects.filter(free, pk__in=candidates).update(
                lease_owner=self.owner, lease_until=lease_until
            )
            subs = {s.pk: s for s in PushSubscription.objects.filter(pk__in=candidates, lease_owner=self.owner)}
            rows: dict[Any, list[PushDelivery]] = {pk: [] for pk in subs}
            blocked: set[Any] = set()
            for row in pending.filter(subscription_id__in=list(subs)).order_by("id"):
                if row.subscription_id in blocked or row.due_at > now:
                    blocked.add(row.subscription_id)
                else:
                    rows[row.subscription_id].append(row)
        return [Lane(subs[pk], rows[pk]) for pk in subs]

    def _release(self, subscription_ids: list[Any]) -> None:
        if subscription_ids:
            PushSubscription.objects.filter(pk__in=subscription_ids, lease_owner=self.owner).update(
                lease_owner="", lease_until=None
            )

    # -- one device

    def _deliver(
        self,
        lane: Lane,
        now: dt.datetime,
        started: float,
        read_cache: dict[Any, ChatMessage | None],
        result: RunResult,
    ) -> None:
        sub = lane.subscription
        pending = self._settle_without_sending(lane.rows, now, read_cache, result)
        # Every push of this round carries the newest count known for the
        # device (all these rows are due now), and never one older than what
        # the push service already accepted: a device's badge only moves
        # forward in log order, whatever replaced what in the push service.
        newest = max(((r.tx, r.position), r.unread) for r in pending) if pending else None
        sends = 0
        released = False
        try:
            for i, row in enumerate(pending):
                if sends >= self.config.sends_per_device or self.stopping.is_set():
                    break
                if not self._within_lease(started):
                    break
                assert newest is not None
                (tx, position), unread = newest
                if sub.badge_position is not None and (sub.badge_tx or 0, sub.badge_position) > (tx, position):
                    tx, position, unread = sub.badge_tx or 0, sub.badge_position, sub.badge_unread or 0
                if row.message is None and unread == sub.badge_unread:
                    self._finish(row, DeliveryState.DROPPED, "badge unchanged", now)
                    result.finished += 1
                    continue
                message = self._message_for(row, read_cache)
                body = payloads.encode(payloads.badge_payload(unread=unread, position=position, message=message))
                outcome = self.transport.send(
                    sub.subscription_info(),
                    body,
                    urgency=payloads.URGENCY_MESSAGE if message else payloads.URGENCY_BADGE,
                    topic=payloads.topic_for(row.customer_id),
                )
                sends += 1
                result.pushes += 1
                if outcome.kind == "sent":
                    # The device's last row: mark it and hand the device back in one commit.
                    released = i + 1 == len(pending) or sends >= self.config.sends_per_device
                    self._mark_sent(row, sub, unread, tx, position, release=released)
                    sub.badge_unread, sub.badge_tx, sub.badge_position = unread, tx, position
                    result.sent += 1
                    result.finished += 1
                    continue
                if outcome.kind == "gone":
                    log.info("push subscription %s is gone (%s); deleting it", sub.pk, outcome.detail)
                    PushSubscription.objects.filter(pk=sub.pk).delete()  # its rows go with it
                    result.finished += 1
                    return
                if outcome.kind == "refused":
                    log.warning("push to %s refused: %s", sub.pk, outcome.detail)
                    self._finish(row, DeliveryState.DEAD, outcome.detail, now, attempted=True)
                    result.finished += 1
                    continue
                self._retry_later(row, sub, outcome, now)
                if row.state != DeliveryState.PENDING:
                    result.finished += 1
                return  # the device is held (or its next row waits for the next claim)
        finally:
            if not released:
                self._release([sub.pk])

    def _settle_without_sending(
        self,
        rows: list[PushDelivery],
        now: dt.datetime,
        read_cache: dict[Any, ChatMessage | None],
        result: RunResult,
    ) -> list[PushDelivery]:
        """Finish what needs no push: expired rows, messages already read, and
        badge-only rows a newer row overtakes. The rest, in order, is to send."""
        candidates = []
        for row in rows:
            if row.expires_at <= now:
                self._finish(row, DeliveryState.DROPPED, "expired", now)
                result.finished += 1
                continue
            if row.message is not None:
                state = self._message_state(row, read_cache)
                if state is None or state.read_at is not None:
                    # Its read is in the log, so a badge-only row follows it.
                    self._finish(row, DeliveryState.DROPPED, "message already read", now)
                    result.finished += 1
                    continue
            candidates.append(row)
        to_send = []
        for i, row in enumerate(candidates):
            if row.message is None and i + 1 < len(candidates):
                # A newer push to this device carries a newer count; a
                # badge-only row has nothing else to say.
                self._finish(row, DeliveryState.SUPERSEDED, f"overtaken by delivery {candidates[-1].pk}", now)
                result.finished += 1
                continue
            to_send.append(row)
        return to_send

    def _message_state(self, row: PushDelivery, cache: dict[Any, ChatMessage | None]) -> ChatMessage | None:
        # The message's own stream, not the timeline read model: it is the
        # truth at this instant, so a read committed a moment ago is seen
        # even while projections lag. One indexed query per message.
        if row.message_id not in cache:
            history = self.store.read_stream(stream_id(row.message_id))  # type: ignore[arg-type]
            cache[row.message_id] = ChatMessage.replay([r.event for r in history])
        return cache[row.message_id]

    def _message_for(self, row: PushDelivery, cache: dict[Any, ChatMessage | None]) -> dict[str, Any] | None:
        if row.message is None:
            return None
        message = dict(row.message)
        state = cache.get(row.message_id)
        if state is not None:
            message["preview"] = state.body  # an edit since it was queued shows its new text
        return message

    # -- marking

    def _mark_sent(
        self, row: PushDelivery, sub: PushSubscription, unread: int, tx: int, position: int, *, release: bool
    ) -> None:
        """Mark the row sent and record the device's new badge (and hand the
        device back if ``release``), atomically and right after the push."""
        now = self.clock()
        if connection.vendor == "postgresql":
            # One statement, so one round trip and one commit per push.
            with connection.cursor() as c:
                c.execute(
                    _MARK_SENT_SQL,
                    {
                        "now": now, "row": row.pk, "customer": row.customer_id, "sub": sub.pk, "unread": unread,
                        "tx": tx, "position": position, "release": release, "owner": self.owner,
                    },
                )
            return
        with transaction.atomic():
            sent = PushDelivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING).update(
                state=DeliveryState.SENT, finished_at=now, attempts=F("attempts") + 1, reason=""
            )
            if sent:  # the count only while the device still belongs to this customer
                PushSubscription.objects.filter(pk=sub.pk, customer_id=row.customer_id).update(
                    badge_unread=unread, badge_tx=tx, badge_position=position, hold_until=None
                )
            if release:
                PushSubscription.objects.filter(pk=sub.pk, lease_owner=self.owner).update(
                    lease_owner="", lease_until=None
                )

    def _finish(
        self, row: PushDelivery, state: str, reason: str, now: dt.datetime, *, attempted: bool = False
    ) -> None:
        changes: dict[str, Any] = {"state": state, "reason": reason[:300], "finished_at": now}
        if attempted:
            changes["attempts"] = F("attempts") + 1
        with transaction.atomic():
            PushDelivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING).update(**changes)
        row.state = state

    def _retry_later(self, row: PushDelivery, sub: PushSubscription, outcome: Outcome, now: dt.datetime) -> None:
        failures = row.failures + (0 if outcome.kind == "throttled" else 1)
        if failures >= self.config.max_failures:
            log.warning("push delivery %s parked as dead after %d failures: %s", row.pk, failures, outcome.detail)
            with transaction.atomic():
                PushDelivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING).update(
                    state=DeliveryState.DEAD,
                    failures=failures,
                    attempts=F("attempts") + 1,
                    reason=f"gave up after {failures} failures; last: {outcome.detail}"[:300],
                    finished_at=now,
                )
            row.state = DeliveryState.DEAD
            return
        wait = self._backoff(failures) if outcome.kind == "retry" else 0.0
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, self.config.max_retry_after))
        elif outcome.kind == "throttled":
            wait = self._backoff(max(1, row.attempts + 1))
        with transaction.atomic():
            PushDelivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING).update(
                failures=failures, attempts=F("attempts") + 1, reason=outcome.detail[:300]
            )
            # The whole device waits: what follows must not overtake this row.
            PushSubscription.objects.filter(pk=sub.pk).update(hold_until=now + dt.timedelta(seconds=wait))
        log.info("push delivery %s: %s; retrying in %.1fs", row.pk, outcome.detail, wait)

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: half fixed, half random."""
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * 2 ** max(0, failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    # -- housekeeping

    def purge(self) -> int:
        """Delete finished rows older than the retention (kept longer than the TTL,
        so a replay of recent events still collides with their unique key)."""
        cutoff = self.clock() - max(self.config.retention, dt.timedelta(seconds=2 * self.config.ttl))
        deleted, _ = PushDelivery.objects.filter(finished_at__lt=cutoff).exclude(
            state=DeliveryState.PENDING
        ).delete()
        return deleted

    def release_all(self) -> None:
        PushSubscription.objects.filter(lease_owner=self.owner).update(lease_owner="", lease_until=None)

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()


# -- wake-ups --------------------------------------------------------------------------

#: Outbox rows were queued (set by the process manager after its commit).
queued = wakeup.Signal()


def wake_delivery() -> None:
    """Tell this process's delivery lanes that rows were queued (thread-safe hint)."""
    queued.notify()


# -- the async runner ----------------------------------------------------------------------

PURGE_EVERY_SECONDS = 600.0


def _close_connection() -> None:
    connection.close()  # this thread's connection: looked up here, not on the loop


def _on_lane_connection(fn: Callable[[], Any]) -> Any:
    """Run on the lane's own thread and keep its connection between rounds.

    (``close_old_connections`` would close it before every round under the
    default CONN_MAX_AGE=0: a new PostgreSQL connection per round.) After an
    error the connection is closed, so the next round starts on a fresh one.
    """
    try:
        return fn()
    except BaseException:
        connection.close()
        raise


async def _lane(index: int, stop: asyncio.Event, config: DeliveryConfig, poll: float) -> None:
    loop = asyncio.get_running_loop()
    woken = queued.register(loop)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"push-delivery-{index}")
    worker: DeliveryWorker | None = None
    failures = 0
    last_purge = time.monotonic()

    async def db(fn: Callable[[], Any]) -> Any:
        return await loop.run_in_executor(executor, _on_lane_connection, fn)

    try:
        worker = await db(lambda: DeliveryWorker(config, owner=f"{make_owner_id()}:{index}"))
        while not stop.is_set():
            try:
                woken.clear()
                result = await db(worker.run_once)
                failures = 0
                if index == 0 and time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                    last_purge = time.monotonic()
                    await db(worker.purge)
                if result.progressed:
                    continue
                await wakeup.wait_either(stop, woken, poll)
            except Exception:
                failures += 1
                delay = min(30.0, 0.2 * 2**failures)
                log.exception("push delivery lane %d failed; retrying in %.1fs", index, delay)
                await wakeup.wait_either(stop, asyncio.Event(), delay)
    finally:
        queued.unregister(loop, woken)
        if worker is not None:
            worker.stopping.set()
            try:
                await db(worker.release_all)
                worker.close()
            except Exception:
                log.exception("push delivery lane %d could not release its devices", index)
        await db(_close_connection)
        executor.shutdown(wait=False)


async def run_delivery_workers(stop: asyncio.Event, *, lanes: int | None = None) -> None:
    """Run push delivery until ``stop`` is set: ``lanes`` workers on threads of their own."""
    if not push_configured():
        log.warning("VAPID_PRIVATE_KEY is not set: push delivery is off (python manage.py generate_vapid_keys)")
        await stop.wait()
        return
    config = DeliveryConfig.from_settings()
    count = lanes or settings.PUSH_DELIVERY_WORKERS
    poll = settings.PUSH_POLL_INTERVAL
    tasks = [asyncio.create_task(_lane(i, stop, config, poll), name=f"push-lane-{i}") for i in range(count)]
    tasks.append(
        asyncio.create_task(wakeup.relay_wakeups(stop, NOTIFY_CHANNEL, queued), name="push-listen")
    )
    await asyncio.gather(*tasks)
