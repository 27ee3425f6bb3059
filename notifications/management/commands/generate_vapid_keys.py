"""Print a fresh VAPID key pair as env-file lines."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from notifications.vapid import generate_vapid_keys


class Command(BaseCommand):
    help = "Print VAPID_PRIVATE_KEY=... and VAPID_PUBLIC_KEY=... lines for a new key pair."
    # It is the remedy for the missing-key warning; don't print that warning first.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(generate_vapid_keys().env_lines())
