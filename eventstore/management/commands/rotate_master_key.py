"""Wrap every customer's data key with the first master key of PARLEY_KEYS (docs/privacy.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Re-wrap every data key with the first key of PARLEY_KEYS (put the new key first, keep the old ones "
            "after it until this has run everywhere, then remove them). Safe to run again; runs beside live traffic.")

    def handle(self, *args: Any, **options: Any) -> None:
        from eventstore import keys

        current = keys.master_keys().current
        done = keys.rotate()
        self.stdout.write(f"re-wrapped {done} data key(s) with master key {current!r}")
        for master, count in sorted(keys.counts().items()):
            self.stdout.write(f"  {master or '(erased)'}: {count}")
