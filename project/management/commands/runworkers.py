"""Run the pipeline (projections, process managers, fan-out) and push delivery, apart from the web processes.

By default a process runs every consumer group and the background jobs.
``--groups`` names the groups it runs, so a deployment can give the live
pipeline processes (or machines) of its own and run the rest elsewhere;
``--no-jobs`` leaves out the timers, the email sender and the delivery
workers (docs/operations.md, "Running the groups apart").

With PARLEY_METRICS_BIND set it also serves its metrics there (it has no
HTTP server that could answer /metrics; docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the pipeline (projections, process managers, real-time fan-out) and push delivery until stopped."

    def add_arguments(self, parser: Any) -> None:
        from project.bootstrap import GROUPS

        parser.add_argument("--no-delivery", action="store_true", help="do not run push delivery workers")
        parser.add_argument(
            "--groups", metavar="NAME[,NAME…]",
            help=f"run only these consumer groups (default: all of {', '.join(GROUPS)}); every process that runs "
                 "one of them must name the same ones",
        )
        parser.add_argument("--no-jobs", action="store_true",
                            help="do not run the timers, the email sender or the delivery workers here")

    def handle(self, *args: Any, no_delivery: bool, groups: str | None, no_jobs: bool, **options: Any) -> None:
        from project.bootstrap import chosen, run_workers, serve_metrics

        try:
            names = chosen(groups.split(",") if groups is not None else None)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_workers(stop, delivery=not no_delivery, groups=names, jobs=not no_jobs)

        # Metrics on a bind of their own (PARLEY_METRICS_BIND), before the
        # workers start, so that a scrape sees them from the first batch on.
        stop_metrics = serve_metrics(settings.PARLEY_METRICS_BIND) if settings.PARLEY_METRICS_BIND else None
        try:
            asyncio.run(main())
        finally:
            if stop_metrics is not None:
                stop_metrics()
