"""Seal personal fields still stored in clear (the upgrade migration does it once; this again, if ever needed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Seal the personal fields of events stored in clear with their customers' keys (docs/privacy.md)."

    def handle(self, *args: Any, **options: Any) -> None:
        from eventstore import keys

        self.stdout.write(f"sealed {keys.seal_stored()} event(s)")
