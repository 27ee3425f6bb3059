"""Processes share partitions with the processes that run the same groups (eventstore.sharing).

The heartbeat is the only shared state of the sharing: each process's row
says which groups it runs and when it was last seen. These tests write
rows as several processes would and read what each process learns.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from eventstore import sharing
from eventstore.models import ConsumerProcess
from project.bootstrap import GROUPS

pytestmark = pytest.mark.django_db(transaction=True)

EVERY = tuple(GROUPS)
PIPELINE = (EVERY[0],)
THE_REST = EVERY[1:]


def _older(owner: str, groups: tuple[str, ...], *, seconds_ago: float, seen_ago: float = 0.0) -> None:
    """A row as another process left it, started ``seconds_ago`` and last seen ``seen_ago``."""
    now = dt.datetime.now(dt.timezone.utc)
    ConsumerProcess.objects.create(owner=owner, groups=",".join(groups),
                                   started_at=now - dt.timedelta(seconds=seconds_ago),
                                   seen_at=now - dt.timedelta(seconds=seen_ago))


def test_processes_count_only_those_that_run_the_same_groups():
    _older("host:1", PIPELINE, seconds_ago=30)
    _older("host:2", PIPELINE, seconds_ago=20)
    _older("host:3", THE_REST, seconds_ago=10)
    assert sharing.heartbeat("host:4", PIPELINE) == sharing.Peers(alive=3)
    assert sharing.heartbeat("host:5", THE_REST) == sharing.Peers(alive=2)
    assert ConsumerProcess.objects.get(owner="host:5").groups == "workflow,push,webhooks,email-fallback"


def test_a_process_whose_groups_partly_overlap_an_older_ones_yields_to_the_oldest():
    _older("host:1", EVERY, seconds_ago=30)
    _older("host:2", EVERY, seconds_ago=20)
    assert sharing.heartbeat("host:3", PIPELINE) == sharing.Peers(alive=1, yield_to="host:1")
    # The older processes do not yield to the newcomer: they keep running every group.
    assert sharing.heartbeat("host:1", EVERY) == sharing.Peers(alive=2)


def test_a_process_that_stopped_or_lapsed_is_neither_counted_nor_yielded_to(settings):
    settings.PARLEY_LEASE_SECONDS = 3
    _older("host:1", EVERY, seconds_ago=60, seen_ago=10)  # silent for longer than a lease: gone
    _older("host:2", EVERY, seconds_ago=50)
    sharing.leave("host:2")
    _older("host:3", PIPELINE, seconds_ago=40, seen_ago=10)
    assert sharing.heartbeat("host:4", PIPELINE) == sharing.Peers(alive=1)


def test_runworkers_refuses_an_unknown_group_or_none_before_it_starts():
    with pytest.raises(CommandError, match="no consumer group named pipe; the groups are pipeline, workflow"):
        call_command("runworkers", "--groups", "pipe,push")
    with pytest.raises(CommandError, match="name at least one consumer group"):
        call_command("runworkers", "--groups", " , ")
    assert not ConsumerProcess.objects.exists()
