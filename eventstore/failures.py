"""What a consumer group's failure leaves in the logs and the metrics.

The record an operator needs names the group, the member that raised, and
the event: its id (to find it in the log and in other systems' logs) and
its position (to compare with the checkpoint and the lag). They are passed
as structured fields (``extra``: the JSON log format writes them as keys)
and written into the message too, for the plain format.

A batch holds many events, and a member handles them together, so the
first failure can only name the batch's range. The runner then goes through
that range one event per batch (eventstore.runner, ``isolating``): the next
failure names the one event the member cannot process.

A failure reported here is marked so: the worker's loop, which logs every
failed step with its traceback (workers.loop), then says only that it
retries, instead of printing the same traceback twice.
"""

from __future__ import annotations

import logging

from eventstore.events import Cursor
from eventstore.reading import Batch
from observability.logs import event_fields, mark_reported
from observability.metrics import CONSUMER_ERRORS

log = logging.getLogger("eventstore.runner")


def batch_failed(group: str, member: str, batch: Batch, exc: BaseException) -> None:
    """Log (with the traceback) and count a batch that raised; it is rolled back and retried."""
    CONSUMER_ERRORS.labels(group, member).inc()
    first, last = batch.events[0], batch.events[-1]
    if len(batch.events) == 1:
        fields = event_fields(group, first.event_id, first.position, member=member, event_type=first.event_type)
        log.error(
            "consumer %s (member %s) failed on event %s at position %d (%s); the batch is rolled back and retried",
            group, member, first.event_id, first.position, first.event_type,
            exc_info=exc, extra=fields,
        )
    else:
        fields = event_fields(
            group, first.event_id, first.position, member=member, last_position=last.position, events=len(batch.events)
        )
        log.error(
            "consumer %s (member %s) failed on a batch of %d events from event %s at position %d to position %d; "
            "it is rolled back and retried one event at a time to name the event that fails",
            group, member, len(batch.events), first.event_id, first.position, last.position,
            exc_info=exc, extra=fields,
        )
    mark_reported(exc)


def effects_failed(group: str, member: str, span: tuple[Cursor, Cursor] | None) -> None:
    """Log (from an ``except`` block) and count a member's effects that failed after its batch committed."""
    CONSUMER_ERRORS.labels(group, member).inc()
    after, end = span if span is not None else (None, None)
    log.exception(
        "consumer %s (member %s): the effects of the batch after position %s to position %s failed after commit "
        "(best effort: not retried)",
        group, member, after.position if after else "?", end.position if end else "?",
        extra=event_fields(
            group, None, end.position if end else None, member=member, after_position=after.position if after else None
        ),
    )


def member_skipped(group: str, member: str, span: tuple[Cursor, Cursor]) -> None:
    """Log (from an ``except`` block) and count a member whose part of a batch is
    left out while the batch commits: what it makes can be made again from the
    log (the live frames, which every web process reads from the log when their
    publication is missing)."""
    CONSUMER_ERRORS.labels(group, member).inc()
    after, end = span
    log.exception(
        "consumer %s (member %s) failed on the batch after position %s to position %s; the batch commits without "
        "it (what it makes is read from the log instead)",
        group, member, after.position, end.position,
        extra=event_fields(group, None, end.position, member=member, after_position=after.position),
    )
