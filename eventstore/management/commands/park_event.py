"""Skip one event for one consumer group: the way past a poison event."""

from __future__ import annotations

import getpass
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from eventstore import groups


class Command(BaseCommand):
    help = (
        "Make GROUP skip EVENT_ID (recorded; the other groups are not affected). The group's running "
        "instance goes on at its next retry; `replay_parked GROUP` hands the event over again later."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("group")
        parser.add_argument("event_id")

    def handle(self, *args: Any, group: str, event_id: str, **options: Any) -> None:
        try:
            parsed = uuid.UUID(event_id)
        except ValueError:
            raise CommandError(f"{event_id!r} is not an event id (a UUID)") from None
        try:
            who = getpass.getuser()
        except Exception:
            who = ""
        try:
            parked = groups.park(group, parsed, by=who)
        except groups.CannotPark as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(
            f"parked {parked.event_type} {parked.event_id} (position {parked.position}) for {parked.group}; "
            f"the group skips it from its next retry on"
        )
