from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from project.bootstrap import consumers
from readmodels.status import consumer_status


class Command(BaseCommand):
    help = "Print each consumer's position and lag behind the log."

    def handle(self, *args: Any, **options: Any) -> None:
        status = consumer_status([c.name for c in consumers()])
        width = max(len(n) for n in status)
        self.stdout.write(f"{'consumer':<{width}}  {'position':>10}  {'lag':>8}  owner")
        for name, s in status.items():
            self.stdout.write(f"{name:<{width}}  {s['position']:>10}  {s['lag']:>8}  {s['owner'] or '-'}")
