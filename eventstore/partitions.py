"""Partitions of a consumer group: the log split by customer, each part with its own checkpoint.

``PARLEY_PIPELINE_PARTITIONS`` (default 1) splits every consumer group by
the shard of each event's partition key (the customer: eventstore.events
``partitioned_by``, ``shard_of``). Partition ``p`` of ``n`` reads the events
whose shard modulo ``n`` is ``p``, in log order, under a checkpoint and a
lease of its own named ``<group>#p/n``; with one partition the name is the
group's own, as before partitions existed. A customer's events are all in
one partition, so each customer's events stay in log order; every read
model row belongs to one customer, so partitions never write the same row.

Reads that span customers (the agents' conversation list) answer with the
*watermark*: the lowest of the partitions' checkpoints, up to which every
partition has processed every event. Every partition reads (and moves its
checkpoint past the other partitions' events) whenever events are appended,
so the watermark follows the log closely.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from eventstore.events import Cursor, shard_of


@dataclass(frozen=True)
class Partition:
    """One of ``count`` partitions of a consumer group: the events whose shard
    (eventstore.events.shard_of of their partition key) modulo ``count`` is ``index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count}")

    def suffix(self) -> str:
        """How a partitioned group's checkpoint is named: ``pipeline#0/4``; nothing for one partition."""
        return "" if self.count == 1 else f"#{self.index}/{self.count}"

    def holds(self, shard: int | None) -> bool:
        return (shard or 0) % self.count == self.index


def count() -> int:
    """How many partitions every consumer group has (PARLEY_PIPELINE_PARTITIONS)."""
    return max(1, int(getattr(settings, "PARLEY_PIPELINE_PARTITIONS", 1)))


def all_partitions(n: int | None = None) -> list[Partition]:
    n = count() if n is None else n
    return [Partition(i, n) for i in range(n)]


def names(group: str, n: int | None = None) -> list[str]:
    """The checkpoint names of ``group``'s partitions."""
    return [group + p.suffix() for p in all_partitions(n)]


def of_key(value: object, n: int | None = None) -> Partition:
    """The partition the events of this partition key (a customer id) go to."""
    n = count() if n is None else n
    return Partition(shard_of(value) % n, n)


def checkpoints(group: str, n: int | None = None) -> dict[Partition, Cursor]:
    """Each partition's committed checkpoint (the start of the log for one that never ran)."""
    parts = all_partitions(n)
    by_name = {group + p.suffix(): p for p in parts}
    found = dict.fromkeys(parts, Cursor.start())
    marks = ", ".join(["%s"] * len(by_name))
    with connection.cursor() as c:
        c.execute(f"SELECT name, tx, position FROM parley_checkpoints WHERE name IN ({marks})", list(by_name))
        for name, tx, position in c.fetchall():
            found[by_name[name]] = Cursor(int(tx), int(position))
    return found


def watermark(group: str, n: int | None = None) -> Cursor:
    """The cursor up to which every partition of ``group`` has processed every event."""
    return min(checkpoints(group, n).values())


def partitions_of(values: Iterable[object], n: int | None = None) -> dict[object, Partition]:
    return {v: of_key(v, n) for v in values}


class LayoutMismatch(RuntimeError):
    """The checkpoints were made for another number of partitions."""


def check_layout(group: str, n: int | None = None) -> None:
    """Refuse to start a group whose checkpoints were made for another number of
    partitions: its new partitions would start from the beginning of the log and
    apply every event again. The way from one number to another is the
    ``repartition`` command."""
    n = count() if n is None else n
    expected = set(names(group, n))
    found = {name for name in _checkpoint_names() if name == group or name.startswith(group + "#")}
    if found and not found & expected:
        raise LayoutMismatch(
            f"the checkpoints of {group} are for another number of partitions ({', '.join(sorted(found))}); "
            f"PARLEY_PIPELINE_PARTITIONS is {n}. Run `python manage.py repartition --partitions {n}` with every "
            "process stopped and the log processed, or set PARLEY_PIPELINE_PARTITIONS back."
        )


def _checkpoint_names() -> list[str]:
    with connection.cursor() as c:
        c.execute("SELECT name FROM parley_checkpoints")
        return [row[0] for row in c.fetchall()]
