"""Replay the whole log into fresh read models, while web and workers serve.

The new tables are built beside the live ones and swapped in by one
transaction (readmodels.rebuild): readers never see an empty or partial
read model, the pipeline is paused only for the swap, and events appended
meanwhile are in the result.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from readmodels.projections import read_models
from readmodels.rebuild import rebuild


class Command(BaseCommand):
    help = "Rebuild read models by replaying the event log (all, or --only NAME), without stopping anything."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--only", action="append",
                            help="rebuild only this projection and those it reads (repeatable)")
        parser.add_argument("--batch-size", type=int, default=5000, help="events per replay transaction")

    def handle(self, *args: Any, only: list[str] | None, batch_size: int, **options: Any) -> None:
        projections = read_models()
        names = [p.name for p in projections]
        unknown = set(only or []) - set(names)
        if unknown:
            raise CommandError(f"unknown projection(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
        chosen = [p for p in projections if not only or p.name in only]
        started = time.monotonic()
        results = rebuild(chosen, batch_size=batch_size)
        took = time.monotonic() - started
        for r in results:
            self.stdout.write(f"{r.name}: replayed {r.events} events")
        self.stdout.write(f"rebuilt {', '.join(r.name for r in results)} in {took:.1f}s")
