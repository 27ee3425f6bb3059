"""Change the number of partitions of every consumer group, with everything stopped and caught up."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from eventstore import groups, partitions
from eventstore.events import Cursor
from eventstore.models import Checkpoint
from eventstore.store import EventStore


class Command(BaseCommand):
    help = (
        "Move every consumer group's checkpoints to N partitions (PARLEY_PIPELINE_PARTITIONS). Every "
        "group must have processed the whole log (stop the web processes, let the workers catch up, "
        "stop them): then each new partition starts where every old one is."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--partitions", type=int, required=True, dest="count", help="the new number of partitions")

    def handle(self, *args: Any, count: int, **options: Any) -> None:
        if not 1 <= count <= 64:
            raise CommandError("--partitions must be from 1 to 64")
        head = EventStore().head()
        with transaction.atomic():
            rows = list(Checkpoint.objects.select_for_update().order_by("name"))
            running = [r.name for r in rows if r.owner]
            if running:
                raise CommandError(f"stop every runworkers first (leases held: {', '.join(running)})")
            behind = [f"{r.name} at {r.position}" for r in rows if Cursor(r.tx, r.position) != head]
            if behind:
                raise CommandError(
                    f"every group must have processed the whole log (up to position {head.position}) first; "
                    f"behind: {', '.join(behind)}. Stop the web processes, let the workers catch up, then "
                    "stop them and run this again."
                )
            names = sorted({groups.group_of(r.name) for r in rows})
            Checkpoint.objects.filter(name__in=[r.name for r in rows]).delete()
            for group in names:
                for name in partitions.names(group, count):
                    Checkpoint.objects.create(name=name, tx=head.tx, position=head.position)
        self.stdout.write(
            f"{len(names)} group(s) now in {count} partition(s) at position {head.position}; "
            f"set PARLEY_PIPELINE_PARTITIONS={count} for every process before starting them"
        )
