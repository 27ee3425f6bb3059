"""The delivery worker: sends the outbox as Web Push, once per row.

Synchronous; one per lane (thread). A round claims devices
(notifications.outbox), finishes what needs no push (expired rows, messages
read since they were queued, badge-only rows a newer row overtakes), pushes
the rest outside any transaction, and marks each row ``sent`` right after
the push service accepted it.

At-least-once edge: a worker that dies after the push service answered 201
but before its mark committed leaves the row pending; once the lease runs
out another worker sends it again. That one push may arrive twice, with the
same payload and Topic (so if the first is still queued the second replaces
it). A row marked ``sent`` is never sent again.

Answers: 201/202 sent; 404/410 the subscription is gone (deleted with its
rows); 429 hold the device until Retry-After; 5xx, network errors and
redirects (3xx, never followed: notifications.transport) back off
exponentially with jitter, then park the row as ``dead`` with the reason;
other answers are refused for good (``dead``).

Every request counts by what its answer meant, every row that reaches a
final state by that state (observability.metrics); every failure is logged
with the row's event id and position (``extra`` fields, and in the message).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventstore.commits import relax_commits
from eventstore.runner import make_owner_id
from notifications import outbox
from notifications import payload as payloads
from notifications.config import DeliveryConfig, utcnow
from notifications.models import DeliveryState, PushDelivery
from notifications.outbox import Lane
from notifications.transport import Outcome, Transport, WebPushTransport
from observability.logs import event_fields, mark_reported
from observability.metrics import PUSH_FINISHED_BY_STATE, PUSH_REQUESTS_BY_OUTCOME

log = logging.getLogger(__name__)

#: The delivery workers' name as a consumer of the log, in their log records.
CONSUMER = "push-delivery"

Clock = Callable[[], dt.datetime]


@dataclass
class RunResult:
    devices: int = 0  # claimed
    pushes: int = 0  # requests made to push services
    sent: int = 0
    finished: int = 0  # rows that reached a final state, sent included
    next_wake: dt.datetime | None = None  # nothing was due: when something will be

    @property
    def progressed(self) -> bool:
        return bool(self.pushes or self.finished)


class DeliveryWorker:
    """Claims devices with due rows and sends them.

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
    ) -> None:
        self.config = config or DeliveryConfig.from_settings()
        self.owner = owner or make_owner_id()
        self.clock = clock
        self.transport = transport or WebPushTransport(self.config)
        #: Set from another thread to make a running batch stop between pushes.
        self.stopping = threading.Event()
        #: The row being delivered, for the log record if delivering it raises.
        self._current: PushDelivery | None = None
        #: As of the last round that found nothing due: when something will be.
        self.next_wake: dt.datetime | None = None

    def run_once(self) -> RunResult:
        """Claim a batch of devices, push their due rows, release them."""
        # A database crash could lose the last moment of marks: those rows are
        # pushed again (the at-least-once edge), never lost. Waiting for the
        # disk at every round's commit is not worth that.
        relax_commits()
        now = self.clock()
        started = time.monotonic()
        result = RunResult()
        claimed = outbox.claim(self.owner, now, batch=self.config.batch, lease_seconds=self.config.lease_seconds)
        lanes, result.next_wake = claimed.lanes, claimed.next_wake
        self.next_wake = claimed.next_wake
        result.devices = len(lanes)
        sent: list[outbox.Sent] = []
        try:
            for lane in lanes:
                if self.stopping.is_set() or not self._within_lease(started):
                    break
                try:
                    self._deliver(lane, now, started, result, sent)
                except Exception as exc:
                    self._report(exc)
                    raise
        finally:
            # The pushes of the round are marked in one commit, which also
            # hands their devices back; the other devices are handed back too.
            outbox.mark_sent(sent, owner=self.owner, now=self.clock())
            PUSH_FINISHED_BY_STATE["sent"].inc(len(sent))
            done = {s.subscription.pk for s in sent}
            outbox.release(self.owner, [ln.subscription.pk for ln in lanes if ln.subscription.pk not in done])
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

    def _report(self, exc: Exception) -> None:
        """Log a row whose delivery raised (the lane's loop retries the round after a backoff)."""
        row = self._current
        if row is None:
            return
        log.error(
            "push delivery %s of event %s at position %d failed", row.pk, row.event_id, row.position,
            exc_info=exc, extra=_fields(row),
        )
        mark_reported(exc)

    def _finish(self, row: PushDelivery, state: str, reason: str, now: dt.datetime, **details: Any) -> None:
        outbox.finish(row, state, reason, now, **details)
        PUSH_FINISHED_BY_STATE[state].inc()

    # -- one device

    def _deliver(self, lane: Lane, now: dt.datetime, started: float, result: RunResult, sent: list[outbox.Sent]) -> None:
        sub = lane.subscription
        pending = self._settle_without_sending(lane, now, result)
        # Every push of this round carries the newest count known for the
        # device (all these rows are due now), and never one older than what
        # the push service already accepted: a device's badge only moves
        # forward in log order, whatever replaced what in the push service.
        newest = max(((r.tx, r.position), r.unread) for r in pending) if pending else None
        sends = 0
        for row in pending:
            if sends >= self.config.sends_per_device or self.stopping.is_set() or not self._within_lease(started):
                break
            assert newest is not None
            (tx, position), unread = newest
            if sub.badge_position is not None and (sub.badge_tx or 0, sub.badge_position) > (tx, position):
                tx, position, unread = sub.badge_tx or 0, sub.badge_position, sub.badge_unread or 0
            self._current = row
            if row.message is None and unread == sub.badge_unread:
                self._finish(row, DeliveryState.DROPPED, "badge unchanged", now)
                result.finished += 1
                continue
            message = _message_for(row, lane)
            body = payloads.encode(payloads.badge_payload(unread=unread, position=position, message=message))
            outcome = self.transport.send(
                sub.subscription_info(),
                body,
                urgency=payloads.URGENCY_MESSAGE if message else payloads.URGENCY_BADGE,
                topic=payloads.topic_for(row.customer_id),
            )
            sends += 1
            result.pushes += 1
            PUSH_REQUESTS_BY_OUTCOME[outcome.kind].inc()
            if outcome.kind == "sent":
                sent.append(outbox.Sent(row, sub, unread, tx, position))
                sub.badge_unread, sub.badge_tx, sub.badge_position = unread, tx, position
                result.sent += 1
                result.finished += 1
                continue
            if outcome.kind == "gone":
                log.info(
                    "push subscription %s is gone (%s) at delivery %s of event %s at position %d; deleting it",
                    sub.pk, outcome.detail, row.pk, row.event_id, row.position, extra=_fields(row),
                )
                outbox.forget_device(sub)
                result.finished += 1
                return
            if outcome.kind == "refused":
                log.warning(
                    "push delivery %s of event %s at position %d to %s refused: %s",
                    row.pk, row.event_id, row.position, sub.pk, outcome.detail, extra=_fields(row),
                )
                self._finish(row, DeliveryState.DEAD, outcome.detail, now, attempted=True)
                result.finished += 1
                continue
            # Its pushes so far are marked first: the hold that follows must stand.
            mine = [s for s in sent if s.subscription.pk == sub.pk]
            if mine:
                outbox.mark_sent(mine, owner=self.owner, now=self.clock())
                PUSH_FINISHED_BY_STATE["sent"].inc(len(mine))
                sent[:] = [s for s in sent if s.subscription.pk != sub.pk]
            self._retry_later(row, lane, outcome, now)
            if row.state != DeliveryState.PENDING:
                result.finished += 1
            return  # the device is held (or its next row waits for the next claim)

    def _settle_without_sending(self, lane: Lane, now: dt.datetime, result: RunResult) -> list[PushDelivery]:
        """Finish what needs no push: expired rows, messages already read, and
        badge-only rows a newer row overtakes. The rest, in order, is to send."""
        candidates = []
        for row in lane.rows:
            self._current = row
            if row.expires_at <= now:
                self._finish(row, DeliveryState.DROPPED, "expired", now)
                result.finished += 1
                continue
            if row.message is not None:
                state = lane.messages.get(row.message_id)  # type: ignore[arg-type]
                if state is None or state[1] is not None:
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
                self._current = row
                self._finish(row, DeliveryState.SUPERSEDED, f"overtaken by delivery {candidates[-1].pk}", now)
                result.finished += 1
                continue
            to_send.append(row)
        return to_send

    def _retry_later(self, row: PushDelivery, lane: Lane, outcome: Outcome, now: dt.datetime) -> None:
        failures = row.failures + (0 if outcome.kind == "throttled" else 1)
        if failures >= self.config.max_failures:
            log.warning(
                "push delivery %s of event %s at position %d parked as dead after %d failures: %s",
                row.pk, row.event_id, row.position, failures, outcome.detail, extra=_fields(row),
            )
            self._finish(
                row, DeliveryState.DEAD, f"gave up after {failures} failures; last: {outcome.detail}", now,
                attempted=True, failures=failures,
            )
            return
        wait = self._backoff(failures) if outcome.kind == "retry" else 0.0
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, self.config.max_retry_after))
        elif outcome.kind == "throttled":
            wait = self._backoff(max(1, row.attempts + 1))
        outbox.hold(row, lane.subscription, failures=failures, reason=outcome.detail, until=now + dt.timedelta(seconds=wait))
        log.info(
            "push delivery %s of event %s at position %d: %s; retrying in %.1fs",
            row.pk, row.event_id, row.position, outcome.detail, wait, extra=_fields(row),
        )

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: half fixed, half random."""
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * 2 ** max(0, failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    # -- housekeeping

    def purge(self) -> int:
        """Delete finished rows older than the retention (kept longer than the TTL,
        so a replay of recent events still collides with their unique key)."""
        return outbox.purge(self.clock() - max(self.config.retention, dt.timedelta(seconds=2 * self.config.ttl)))

    def release_all(self) -> None:
        outbox.release_all(self.owner)

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()


def _fields(row: PushDelivery) -> dict[str, Any]:
    return event_fields(CONSUMER, row.event_id, row.position, delivery_id=row.pk, subscription_id=str(row.subscription_id))


def _message_for(row: PushDelivery, lane: Lane) -> dict[str, Any] | None:
    if row.message is None:
        return None
    message = dict(row.message)
    state = lane.messages.get(row.message_id)  # type: ignore[arg-type]
    if state is not None:
        message["preview"] = state[0]  # an edit since it was queued shows its new text
    return message
