"""The consumer groups a deployment runs, and how each of them stands.

The composition root declares its groups at start-up (``declare``), so
``readmodels_status``, /healthz and /metrics list every group, also one
that never ran (it has no checkpoint row yet, and that is worth seeing).
How a group stands is read from its checkpoint row, never from the process
that runs it: every process reports the same truth, and a group that no
process runs shows as not running.

Parking (``park``, ``parked``): an operator's way past an event a group's
code cannot process (eventstore.runner).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from eventstore import partitions
from eventstore.events import Cursor
from eventstore.models import Checkpoint, Parked
from eventstore.store import EventStore

_declared: dict[str, str] = {}


def declare(name: str, description: str) -> None:
    """Say that this deployment runs the consumer group ``name`` (at start-up)."""
    _declared[name] = description


def declared() -> dict[str, str]:
    """The declared groups and what each does, in the order they were declared."""
    return dict(_declared)


def names() -> list[str]:
    """Every group's checkpoint: the declared groups' (each of their partitions when
    the pipeline is partitioned: eventstore.partitions), then any other with a row."""
    declared = [name for group in _declared for name in partitions.names(group)]
    others = sorted(set(Checkpoint.objects.values_list("name", flat=True)) - set(declared))
    return [*declared, *others]


def group_of(name: str) -> str:
    """The group a checkpoint name belongs to (``pipeline#1/4`` -> ``pipeline``)."""
    return name.split("#", 1)[0]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def status(name: str, store: EventStore | None = None) -> dict[str, Any]:
    """{"position", "lag", "owner", "lease_until", "running", "error", "parked"}.

    ``lag`` is the number of readable events the group has not processed;
    ``running`` is whether an instance holds its lease now. Lag with nothing
    running means that group stands still. ``error`` names the event the
    group is stuck on ({"event_id", "position", "member", "detail", "since"}),
    or is None; ``parked`` counts the events parked for it and not replayed.
    """
    row = Checkpoint.objects.filter(name=name).first()
    cursor = Cursor(row.tx, row.position) if row else Cursor.start()
    now = _now()
    running = bool(row and row.owner and row.lease_until and row.lease_until > now)
    error = None
    if row is not None and row.error_event_id is not None:
        error = {
            "event_id": str(row.error_event_id), "position": row.error_position, "member": row.error_member,
            "detail": row.error_detail, "since": row.error_at.isoformat() if row.error_at else None,
        }
    return {
        "position": cursor.position,
        "lag": (store or EventStore()).count_after(cursor),
        "owner": row.owner if running and row else "",
        "lease_until": row.lease_until.isoformat() if running and row and row.lease_until else None,
        "running": running,
        "error": error,
        "parked": Parked.objects.filter(consumer_group=name, replayed_at__isnull=True).count(),
    }


class CannotPark(ValueError):
    """The event cannot be parked for that group (unknown, or already past)."""


@dataclass(frozen=True)
class ParkedEvent:
    group: str
    event_id: uuid.UUID
    position: int
    event_type: str
    detail: str
    parked_at: dt.datetime
    parked_by: str
    replayed_at: dt.datetime | None


def park(group: str, event_id: uuid.UUID, *, by: str = "") -> ParkedEvent:
    """Make ``group`` skip the event ``event_id`` (recorded; the group's running
    instance sees it at its next retry). Only an event the group has not
    processed yet can be parked; parking one twice changes nothing. Parking is
    by group: the partition that holds the event skips it."""
    group = group_of(group)
    known = sorted({group_of(n) for n in names()})
    if group not in known:
        raise CannotPark(f"no consumer group named {group!r} (known: {', '.join(known)})")
    found = EventStore().read_events([event_id])
    if not found:
        raise CannotPark(f"no event {event_id} in the log")
    r = found[0]
    # The partition of the group that holds this event decides whether it is past it.
    holder = group + partitions.Partition(r.shard % partitions.count(), partitions.count()).suffix()
    row = Checkpoint.objects.filter(name=holder).first()
    if row is not None and r.cursor <= Cursor(row.tx, row.position):
        raise CannotPark(f"group {group} has processed event {event_id} already (its checkpoint is at {row.position})")
    detail = row.error_detail if row is not None and row.error_event_id == event_id else ""
    parked, _ = Parked.objects.get_or_create(
        consumer_group=group, event_id=event_id,
        defaults={"position": r.position, "tx": r.tx, "event_type": r.event_type, "detail": detail,
                  "parked_at": _now(), "parked_by": by},
    )
    return _view(parked)


def parked(group: str | None = None, *, include_replayed: bool = False) -> list[ParkedEvent]:
    qs = Parked.objects.order_by("consumer_group", "tx", "position")
    if group is not None:
        qs = qs.filter(consumer_group=group)
    if not include_replayed:
        qs = qs.filter(replayed_at__isnull=True)
    return [_view(p) for p in qs]


def _view(p: Parked) -> ParkedEvent:
    return ParkedEvent(p.consumer_group, p.event_id, p.position, p.event_type, p.detail, p.parked_at, p.parked_by,
                       p.replayed_at)
