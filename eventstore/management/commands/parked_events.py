"""The events parked for consumer groups."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from eventstore import groups


class Command(BaseCommand):
    help = "List the events parked for each consumer group (or one), and whether they were replayed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("group", nargs="?")
        parser.add_argument("--all", action="store_true", help="also those already replayed")

    def handle(self, *args: Any, group: str | None, all: bool, **options: Any) -> None:
        found = groups.parked(group, include_replayed=all)
        if not found:
            self.stdout.write("no parked events")
            return
        for p in found:
            state = f"replayed {p.replayed_at.isoformat()}" if p.replayed_at else "parked"
            by = f" by {p.parked_by}" if p.parked_by else ""
            self.stdout.write(
                f"{p.group:<16}  {p.position:>10}  {p.event_type:<28}  {p.event_id}  {state} "
                f"(since {p.parked_at.isoformat()}{by})"
            )
            if p.detail:
                self.stdout.write(f"{'':<16}  {p.detail}")
