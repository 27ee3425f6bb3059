"""Serve HTTP and websockets with Daphne, with every worker on the same loop.

The embedded mode (`make run`): one process, SQLite and the in-memory
channel layer. Static files come through ServeStatic's middleware, as in
every deployment (project.settings). The workers run as tasks on Daphne's asyncio loop so that
their channel-layer sends reach this process's sockets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.management.base import BaseCommand

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve web, websockets and all workers in one process (embedded mode)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-workers", action="store_true", help="serve only (workers run elsewhere)")

    def handle(self, *args: Any, bind: str, port: int, no_workers: bool, **options: Any) -> None:
        from daphne.server import Server  # installs the asyncio reactor
        from twisted.internet import reactor

        from project.asgi import application
        from project.bootstrap import run_workers

        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        def start_workers() -> None:
            loop = reactor._asyncioEventloop  # type: ignore[attr-defined]
            tasks.append(loop.create_task(run_workers(stop)))

        def stop_workers() -> Any:
            stop.set()
            if not tasks:
                return None
            from twisted.internet.defer import Deferred

            return Deferred.fromFuture(asyncio.ensure_future(asyncio.wait(tasks, timeout=5)))

        if not no_workers:
            reactor.callWhenRunning(start_workers)
            # zope interface stubs omit self, so mypy miscounts the arguments here.
            reactor.addSystemEventTrigger("before", "shutdown", stop_workers)  # type: ignore[arg-type]

        self.stdout.write(f"Parley at http://{bind}:{port}/ (agent dashboard: /agent/, customer chat: /chat/)")
        Server(
            application=application,
            endpoints=[f"tcp:port={port}:interface={bind}"],
            signal_handlers=True,
            verbosity=1,
        ).run()
