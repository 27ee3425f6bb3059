"""The delivery worker: sends the outbox as Web Push, once per row.

A job of workers.pool: a round of devices is claimed (notifications.outbox)
on the pool's database thread; a work thread finishes what needs no push
(expired rows, messages read since they were queued, badge-only rows a
newer row overtakes) and pushes the rest, outside any transaction; the
database thread then records the round with the others that finished
(``outbox.settle``: one commit). ``run_once`` and ``drain`` do the same in
the calling thread.

At-least-once edge: a worker that dies after the push service answered 201
but before its round was recorded leaves the row pending; once the lease
runs out another worker sends it again. That one push may arrive twice,
with the same payload and Topic (so if the first is still queued the
second replaces it). A row marked ``sent`` is never sent again.

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
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from eventstore.commits import relax_commits
from eventstore.runner import make_owner_id
from notifications import outbox
from notifications import payload as payloads
from notifications.config import DeliveryConfig, utcnow
from notifications.models import DeliveryState, PushDelivery
from notifications.outbox import Lane, Outcome, Round
from notifications.transport import Outcome as Answer
from notifications.transport import Transport, WebPushTransport
from observability.logs import event_fields, mark_reported
from observability.metrics import PUSH_FINISHED_BY_STATE, PUSH_REQUESTS_BY_OUTCOME
from workers import jobs
from workers.pool import run_round

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
    """Claims devices with due rows and sends them (a job of workers.pool).

    ``clock`` is the time the worker acts at (due, lease and hold times); tests
    hand in their own to move time without sleeping. One transport serves
    every work thread (its connection pools are thread-safe).
    """

    def __init__(
        self,
        config: DeliveryConfig | None = None,
        *,
        owner: str | None = None,
        clock: Clock = utcnow,
        transport: Transport | None = None,
        threads: int = 1,
    ) -> None:
        self.config = config or DeliveryConfig.from_settings()
        self.owner = owner or make_owner_id()
        self.clock = clock
        self.transport = transport or WebPushTransport(self.config, connections=threads)
        #: Set from another thread to make running rounds stop between pushes.
        self.stopping = threading.Event()
        #: As of the last claim that found nothing due: when something will be.
        self.next_wake: dt.datetime | None = None

    # -- the pool's job (workers.pool)

    def now(self) -> dt.datetime:
        return self.clock()

    def claim(self, rounds: int, busy: Mapping[Hashable, int]) -> list[Round]:
        # A database crash could lose the last moment of marks: those rows are
        # pushed again (the at-least-once edge), never lost. Waiting for the
        # disk at every round's commit is not worth that.
        relax_commits()
        return outbox.claim(
            self.owner, self.clock(), rounds=rounds, batch=self.config.batch, lease_seconds=self.config.lease_seconds
        )

    def perform(self, work: Round) -> Outcome:
        outcome = Outcome(work)
        # Leave room for one more request (and its retry of the connection)
        # before the lease could lapse under us.
        deadline = work.claim.deadline - 2 * self.config.timeout
        for lane in work.lanes:
            if self.stopping.is_set() or time.monotonic() >= deadline:
                break
            self._deliver(work, lane, outcome, deadline)
        return outcome

    def settle(self, outcomes: list[Outcome]) -> None:
        relax_commits()
        for state, count in outbox.settle(outcomes, owner=self.owner, now=self.clock()).items():
            PUSH_FINISHED_BY_STATE[state].inc(count)

    def release(self, work: list[Round]) -> None:
        outbox.release(self.owner, work)

    def report(self, work: Round, error: BaseException) -> None:
        """Log a row whose delivery raised (its round is handed back, and the pool backs off)."""
        row = work.current
        if row is None:
            return
        log.error(
            "push delivery %s of event %s at position %d failed", row.pk, row.event_id, row.position,
            exc_info=error, extra=_fields(row),
        )
        mark_reported(error)

    def next_due(self) -> dt.datetime | None:
        return outbox.next_due(self.clock())

    def chores(self) -> int:
        return self.purge()

    # -- in the calling thread

    def run_once(self) -> RunResult:
        """Claim a round of devices, push their due rows, record it."""
        outcomes = run_round(self)
        result = RunResult(devices=sum(len(o.round.lanes) for o in outcomes))
        for o in outcomes:
            result.pushes += o.pushes
            result.sent += len(o.sent)
            result.finished += len(o.sent) + len(o.done) + sum(len(lane.rows) for lane in o.round.lanes
                                                                 if lane.subscription in o.gone)
        if not outcomes:
            self.next_wake = result.next_wake = self.next_due()
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

    # -- one device

    def _deliver(self, work: Round, lane: Lane, outcome: Outcome, deadline: float) -> None:
        sub = lane.subscription
        now = work.claim.claimed_at
        pending = self._settle_without_sending(work, lane, outcome, now)
        # Every push of this round carries the newest count known for the
        # device (all these rows are due now), and never one older than what
        # the push service already accepted: a device's badge only moves
        # forward in log order, whatever replaced what in the push service.
        newest = max(((r.tx, r.position), r.unread) for r in pending) if pending else None
        sends = 0
        for row in pending:
            if sends >= self.config.sends_per_device or self.stopping.is_set() or time.monotonic() >= deadline:
                break
            assert newest is not None
            (tx, position), unread = newest
            if sub.badge_position is not None and (sub.badge_tx or 0, sub.badge_position) > (tx, position):
                tx, position, unread = sub.badge_tx or 0, sub.badge_position, sub.badge_unread or 0
            work.current = row
            if row.message is None and unread == sub.badge_unread:
                outcome.done.append(jobs.Done(row.pk, DeliveryState.DROPPED, "badge unchanged", attempted=False))
                continue
            message = _message_for(row, lane)
            body = payloads.encode(payloads.badge_payload(unread=unread, position=position, message=message))
            answer = self.transport.send(
                sub.subscription_info(),
                body,
                urgency=payloads.URGENCY_MESSAGE if message else payloads.URGENCY_BADGE,
                topic=payloads.topic_for(row.customer_id),
            )
            sends += 1
            outcome.pushes += 1
            PUSH_REQUESTS_BY_OUTCOME[answer.kind].inc()
            if answer.kind == "sent":
                outcome.sent.append(outbox.Sent(row, sub, unread, tx, position))
                sub.badge_unread, sub.badge_tx, sub.badge_position = unread, tx, position
                continue
            if answer.kind == "gone":
                log.info(
                    "push subscription %s is gone (%s) at delivery %s of event %s at position %d; deleting it",
                    sub.pk, answer.detail, row.pk, row.event_id, row.position, extra=_fields(row),
                )
                outcome.gone.append(sub)
                return
            if answer.kind == "refused":
                log.warning(
                    "push delivery %s of event %s at position %d to %s refused: %s",
                    row.pk, row.event_id, row.position, sub.pk, answer.detail, extra=_fields(row),
                )
                outcome.done.append(jobs.Done(row.pk, DeliveryState.DEAD, answer.detail))
                continue
            self._retry_later(row, lane, answer, now, outcome)
            return  # the device is held (or its next row waits for the next claim)

    def _settle_without_sending(self, work: Round, lane: Lane, outcome: Outcome, now: dt.datetime) -> list[PushDelivery]:
        """Finish what needs no push: expired rows, messages already read, and
        badge-only rows a newer row overtakes. The rest, in order, is to send."""
        candidates = []
        for row in lane.rows:
            work.current = row
            if row.expires_at <= now:
                outcome.done.append(jobs.Done(row.pk, DeliveryState.DROPPED, "expired", attempted=False))
                continue
            if row.message is not None:
                state = lane.messages.get(row.message_id)  # type: ignore[arg-type]
                if state is None or state[1] is not None:
                    # Its read is in the log, so a badge-only row follows it.
                    outcome.done.append(jobs.Done(row.pk, DeliveryState.DROPPED, "message already read", attempted=False))
                    continue
            candidates.append(row)
        to_send = []
        for i, row in enumerate(candidates):
            if row.message is None and i + 1 < len(candidates):
                # A newer push to this device carries a newer count; a
                # badge-only row has nothing else to say.
                outcome.done.append(jobs.Done(
                    row.pk, DeliveryState.SUPERSEDED, f"overtaken by delivery {candidates[-1].pk}", attempted=False
                ))
                continue
            to_send.append(row)
        return to_send

    def _retry_later(self, row: PushDelivery, lane: Lane, answer: Answer, now: dt.datetime, outcome: Outcome) -> None:
        failures = row.failures + (0 if answer.kind == "throttled" else 1)
        if failures >= self.config.max_failures:
            log.warning(
                "push delivery %s of event %s at position %d parked as dead after %d failures: %s",
                row.pk, row.event_id, row.position, failures, answer.detail, extra=_fields(row),
            )
            outcome.done.append(jobs.Done(
                row.pk, DeliveryState.DEAD, f"gave up after {failures} failures; last: {answer.detail}",
                values=jobs.values(failures=failures),
            ))
            return
        wait = self._backoff(failures) if answer.kind == "retry" else 0.0
        if answer.retry_after is not None:
            wait = max(wait, min(answer.retry_after, self.config.max_retry_after))
        elif answer.kind == "throttled":
            wait = self._backoff(max(1, row.attempts + 1))
        until = now + dt.timedelta(seconds=wait)
        # The row waits, and the device's rows behind it with it: what follows
        # must not overtake it. The device keeps the hold too (Retry-After is
        # the push service's word about this subscription).
        outcome.retry.append(jobs.Retry(row.pk, until, answer.detail, values=jobs.values(failures=failures)))
        outcome.holds[lane.subscription.pk] = until
        log.info(
            "push delivery %s of event %s at position %d: %s; retrying in %.1fs",
            row.pk, row.event_id, row.position, answer.detail, wait, extra=_fields(row),
        )

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with jitter: half fixed, half random."""
        return jobs.retry_delay(failures, base=self.config.backoff_base, cap=self.config.backoff_cap).total_seconds()

    # -- housekeeping

    def purge(self) -> int:
        """Delete finished rows older than the retention (kept longer than the TTL,
        so a replay of recent events still collides with their unique key)."""
        return outbox.purge(self.clock() - max(self.config.retention, dt.timedelta(seconds=2 * self.config.ttl)))

    def release_all(self) -> None:
        outbox.release_all(self.owner, self.clock())

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
