"""Every consumer group's position, lag, owner, and the event it is stuck on."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from eventstore import groups


class Command(BaseCommand):
    help = "Print each consumer group's position, lag behind the log, owner, and the event it is stuck on, if any."

    def handle(self, *args: Any, **options: Any) -> None:
        described = groups.declared()
        self.stdout.write(f"{'group':<16}  {'position':>10}  {'lag':>8}  {'parked':>6}  owner")
        for name in groups.names():
            s = groups.status(name)
            owner = s["owner"] or "- (not running: it stands still)"
            self.stdout.write(f"{name:<16}  {s['position']:>10}  {s['lag']:>8}  {s['parked']:>6}  {owner}")
            if name in described:
                self.stdout.write(f"{'':<16}  {described[name]}")
            error = s["error"]
            if error is not None:
                self.stdout.write(
                    f"{'':<16}  STUCK on event {error['event_id']} at position {error['position']} "
                    f"(member {error['member'] or name}, since {error['since']}): {error['detail']}"
                )
                self.stdout.write(
                    f"{'':<16}  fix the code and restart, or skip it for this group only: "
                    f"python manage.py park_event {name} {error['event_id']}"
                )
