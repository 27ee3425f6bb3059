"""Run the pipeline (projections, process managers, fan-out) and push delivery, apart from the web processes."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the pipeline (projections, process managers, real-time fan-out) and push delivery until stopped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-delivery", action="store_true", help="do not run push delivery workers")

    def handle(self, *args: Any, no_delivery: bool, **options: Any) -> None:
        from project.bootstrap import run_workers

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_workers(stop, delivery=not no_delivery)

        asyncio.run(main())
