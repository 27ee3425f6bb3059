from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from readmodels.projections import PIPELINE
from readmodels.status import pipeline_status


class Command(BaseCommand):
    help = "Print the pipeline's position, its lag behind the log, and which instance runs it."

    def handle(self, *args: Any, **options: Any) -> None:
        s = pipeline_status()
        self.stdout.write(f"{'consumer':<10}  {'position':>10}  {'lag':>8}  owner")
        owner = s["owner"] or "- (not running: read models, push and live delivery stand still)"
        self.stdout.write(f"{PIPELINE:<10}  {s['position']:>10}  {s['lag']:>8}  {owner}")
