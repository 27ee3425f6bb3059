"""Hand the events parked for a consumer group to it again, once its code is fixed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Replay the events parked for GROUP. A process manager's group gets each event again, alone, in log "
        "order. For the read models (pipeline), whose rows depend on the order of events, it rebuilds them "
        "from the whole log instead, parked events included."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("group")

    def handle(self, *args: Any, group: str, **options: Any) -> None:
        from eventstore import groups
        from eventstore.models import Parked
        from project.bootstrap import GROUPS
        from project.bootstrap import group as make_group
        from readmodels.projections import PIPELINE, read_models
        from readmodels.rebuild import rebuild

        if group not in GROUPS:
            raise CommandError(f"no consumer group named {group!r} (known: {', '.join(GROUPS)})")
        pending = groups.parked(group)
        if not pending:
            self.stdout.write(f"no parked events for {group}")
            return
        if group == PIPELINE:
            rebuild(read_models())
            done = Parked.objects.filter(consumer_group=group, replayed_at__isnull=True).update(
                replayed_at=groups._now())
            self.stdout.write(f"rebuilt the read models from the log; {done} parked event(s) are in them now")
            return
        done = make_group(group).replay_parked()
        self.stdout.write(f"replayed {done} parked event(s) for {group}")
