"""Replay the whole log into fresh read models.

Each projection is reset and replayed inside one transaction, holding its
consumer lease: readers keep seeing the old rows until the commit swaps in
the new ones, and the live instance stands by meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from eventstore.runner import ConsumerRunner, LostLease
from readmodels.projections import all_projections


class Command(BaseCommand):
    help = "Rebuild read models by replaying the event log (all, or --only NAME)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--only", action="append", help="rebuild only this projection (repeatable)")
        parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a running instance's lease")

    def handle(self, *args: Any, only: list[str] | None, wait: float, **options: Any) -> None:
        projections = all_projections()
        names = [p.name for p in projections]
        unknown = set(only or []) - set(names)
        if unknown:
            raise CommandError(f"unknown projection(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
        for projection in projections:
            if only and projection.name not in only:
                continue
            runner = ConsumerRunner(projection)
            started = time.monotonic()
            deadline = started + wait
            while True:
                try:
                    count = runner.rebuild()
                    break
                except LostLease:
                    if time.monotonic() > deadline:
                        raise CommandError(f"{projection.name}: another instance holds the lease") from None
                    time.sleep(0.5)
            took = time.monotonic() - started
            self.stdout.write(f"{projection.name}: replayed {count} events in {took:.1f}s")
