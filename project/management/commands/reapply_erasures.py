"""Make every erasure hold again after a restore of the database from a backup older than it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = ("After a restore (docs/operations.md, \"Backup and restore\"): for every customer whose key is erased, "
            "delete their contact record, queued pushes, webhooks and emails, attachments and files, cancel their "
            "timers, and append CustomerErased where the log lost it. Safe to run again. Then rebuild_readmodels.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sweep-files", action="store_true",
                            help="also delete every stored attachment file no row names (restored media); "
                                 "only while no Parley process runs")

    def handle(self, *args: Any, **options: Any) -> None:
        from project.privacy import reapply_erasures

        done = reapply_erasures(sweep_files=options["sweep_files"])
        self.stdout.write(
            f"{done.customers} erased customer(s) checked: {done.queued} queued row(s) and "
            f"{done.attachments} attachment(s) of theirs deleted"
            + (f", {done.files} file(s) no row names deleted" if options["sweep_files"] else ""))
