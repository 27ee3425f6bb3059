"""List (--dry-run) or erase the customers whose conversation is older than the retention period."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = ("Erase the customers whose conversation has had no activity for PARLEY_RETENTION_DAYS "
            "(or --days); --dry-run lists them and erases nothing.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list who would be erased; change nothing")
        parser.add_argument("--days", type=float, default=None, help="instead of PARLEY_RETENTION_DAYS")

    def handle(self, *args: Any, **options: Any) -> None:
        from project.privacy import erase_customer, inactive, retention_days

        days = options["days"] if options["days"] is not None else retention_days()
        if days <= 0:
            raise CommandError("no retention period: set PARLEY_RETENTION_DAYS or give --days")
        now = dt.datetime.now(dt.timezone.utc)
        found = inactive(now, days=days)
        for row in found:
            verb = "would erase" if options["dry_run"] else "erasing"
            self.stdout.write(f"{verb} {row.customer_id} (last activity {row.last_activity_at.isoformat()})")
            if not options["dry_run"]:
                erase_customer(row.customer_id, reason="retention", actor="retention")
        self.stdout.write(f"{len(found)} customer(s) inactive for more than {days:g} days"
                          + (" (dry run: nothing erased)" if options["dry_run"] else " erased"))
