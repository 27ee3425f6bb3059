"""Run the pipeline (projections, process managers, fan-out) and push delivery, apart from the web processes.

With PARLEY_METRICS_BIND set it also serves its metrics there (it has no
HTTP server that could answer /metrics; docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the pipeline (projections, process managers, real-time fan-out) and push delivery until stopped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-delivery", action="store_true", help="do not run push delivery workers")

    def handle(self, *args: Any, no_delivery: bool, **options: Any) -> None:
        from project.bootstrap import run_workers, serve_metrics

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_workers(stop, delivery=not no_delivery)

        # Metrics on a bind of their own (PARLEY_METRICS_BIND), before the
        # workers start, so that a scrape sees them from the first batch on.
        stop_metrics = serve_metrics(settings.PARLEY_METRICS_BIND) if settings.PARLEY_METRICS_BIND else None
        try:
            asyncio.run(main())
        finally:
            if stop_metrics is not None:
                stop_metrics()
