"""The partitioned pipeline: each partition its customers, together exactly one pipeline.

With ``PARLEY_PIPELINE_PARTITIONS`` above one, every consumer group runs as
that many partitions, each reading the events of its customers under a
checkpoint and a lease of its own. These tests check the parts against the
whole: what the partitions build together equals what one pipeline builds
from the same log, each partition moves past the others' events, reads
across customers answer with the watermark, the round-robin never puts an
agent above capacity when partitions decide at once, and a live socket gets
the partitions' events merged in log order.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from django.db import connection

from accounts import presence
from chat.commands import Actor, MarkMessageAsRead, SendMessage
from chat.events import SenderKind
from chat.handlers import mark_message_as_read, send_message
from conversations import handlers as workflow_handlers
from conversations.commands import Agent, Claim
from customers.services import customer_register
from eventstore import partitions
from eventstore.events import Cursor
from eventstore.models import Checkpoint, StoredEvent
from eventstore.partitions import Partition
from eventstore.runner import LostLease
from eventstore.store import EventStore
from project.bootstrap import FOLLOWERS, catch_up, group
from readmodels import selectors
from readmodels.models import Badge, Conversation, DirectoryEntry, EventRows, SearchEntry, TimelineMessage, Unread
from readmodels.projections import PIPELINE
from realtime.dispatcher import Dispatcher
from realtime.frames import AGENTS, Envelope

pytestmark = pytest.mark.django_db(transaction=True)

GRACE = Actor(SenderKind.AGENT, "1", "Grace")


def customers_over(n: int, per_partition: int = 2) -> dict[int, list[uuid.UUID]]:
    """Registered customers, ``per_partition`` in each of ``n`` partitions."""
    found: dict[int, list[uuid.UUID]] = {p: [] for p in range(n)}
    i = 0
    while any(len(v) < per_partition for v in found.values()):
        cid = customer_register(name=f"Customer {i}", email=f"c{i}@example.com").customer.id
        i += 1
        p = partitions.of_key(cid, n).index
        if len(found[p]) < per_partition:
            found[p].append(cid)
    return found


def talk(customer_id: uuid.UUID, rounds: int = 2) -> None:
    """A customer and an agent write; the customer reads the first reply."""
    for r in range(rounds):
        send_message(SendMessage(uuid.uuid4(), customer_id, Actor(SenderKind.CUSTOMER, str(customer_id)), f"hello {r}"))
        reply = uuid.uuid4()
        send_message(SendMessage(reply, customer_id, GRACE, f"reply {r}"))
        if r == 0:
            mark_message_as_read(MarkMessageAsRead(reply, Actor(SenderKind.CUSTOMER, str(customer_id))))


def read_models() -> dict[str, Any]:
    def rows(model: Any, *fields: str) -> list[tuple[Any, ...]]:
        return sorted(model.objects.values_list(*fields))

    return {
        "directory": rows(DirectoryEntry, "customer_id", "name", "tx", "position"),
        "timeline": rows(TimelineMessage, "message_id", "body", "read_at", "tx", "position"),
        "conversations": rows(Conversation, "customer_id", "unread_for_agents", "awaiting_reply", "status",
                              "assignee_id", "tx", "position"),
        "unread": rows(Unread, "message_id", "reader"),
        "badge": rows(Badge, "customer_id", "unread", "tx", "position"),
        "search": rows(SearchEntry, "key", "text", "tx", "position"),
        "event_rows": rows(EventRows, "position", "shard"),
    }


def forget_read_models() -> None:
    for model in (DirectoryEntry, TimelineMessage, Conversation, Unread, Badge, SearchEntry, EventRows):
        model.objects.all().delete()
    Checkpoint.objects.all().delete()


def test_the_partitions_build_together_what_one_pipeline_builds(settings):
    settings.PARLEY_PIPELINE_PARTITIONS = 3
    by_partition = customers_over(3)
    for cids in by_partition.values():
        for cid in cids:
            talk(cid)
    workflow_handlers.claim(Claim(by_partition[1][0], Agent("1", "Grace")))

    # One partition alone: its customers only, and its checkpoint past everything.
    first = group(PIPELINE, partition=Partition(0, 3))
    first.catch_up()
    projected = set(DirectoryEntry.objects.values_list("customer_id", flat=True))
    registered = {r.event.customer_id for r in EventStore().read_all(Cursor.start(), limit=10_000)  # type: ignore[attr-defined]
                  if r.event_type == "CustomerRegistered"}
    assert projected == {c for c in registered if partitions.of_key(c, 3).index == 0} and set(by_partition[0]) <= projected
    assert partitions.checkpoints(PIPELINE)[Partition(0, 3)] == EventStore().head()
    assert {partitions.of_key(c, 3).index for c in EventRows.objects.values_list("customer_id", flat=True)} == {0}

    catch_up(PIPELINE, "workflow", *FOLLOWERS)
    catch_up(PIPELINE)
    together = read_models()
    assert registered == {r[0] for r in together["directory"]}

    # The same log through one unpartitioned pipeline.
    forget_read_models()
    settings.PARLEY_PIPELINE_PARTITIONS = 1
    catch_up(PIPELINE)
    assert read_models() == together


def test_a_read_across_customers_answers_with_the_lowest_partition_and_shows_the_others(settings):
    settings.PARLEY_PIPELINE_PARTITIONS = 2
    by_partition = customers_over(2, per_partition=1)
    ahead, behind = by_partition[0][0], by_partition[1][0]
    talk(behind, rounds=1)
    group(PIPELINE, partition=Partition(1, 2)).catch_up()  # the first messages of both are projected
    talk(ahead, rounds=1)
    group(PIPELINE, partition=Partition(0, 2)).catch_up()
    talk(behind, rounds=1)  # partition 1 has not read these
    marks = partitions.checkpoints(PIPELINE)
    page = selectors.conversations(50)
    assert page.position == min(marks.values()).position == marks[Partition(1, 2)].position
    assert {c["customer_id"] for c in page.items} == {str(ahead), str(behind)}
    # A customer's own reads answer with their partition's checkpoint.
    assert selectors.badge(ahead)[1] == marks[Partition(0, 2)].position


@pytest.mark.postgres
def test_partitions_assigning_at_once_never_put_an_agent_above_capacity(make_agent, settings):
    settings.PARLEY_PIPELINE_PARTITIONS = 4
    settings.PARLEY_AUTO_ASSIGN = "round_robin"
    settings.PARLEY_AGENT_CAPACITY = 5
    agents = [make_agent(f"agent{i}") for i in range(2)]
    for a in agents:
        presence.agent_connected(f"socket-{a.id}", a.id)
    customers = [customer_register(name=f"C{i}").customer.id for i in range(24)]
    for c in customers:
        send_message(SendMessage(uuid.uuid4(), c, Actor(SenderKind.CUSTOMER, str(c)), "Hello"))

    def run(p: int) -> None:
        try:
            group("workflow", partition=Partition(p, 4)).catch_up()
        except LostLease:
            pass
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    catch_up(PIPELINE)
    load = Counter(Conversation.objects.exclude(assignee_id=None).values_list("assignee_id", flat=True))
    assert load == {a.id: 5 for a in agents}  # ten assigned, five each, nobody above capacity
    assert StoredEvent.objects.filter(event_type="ConversationAssigned").count() == 10


@pytest.mark.postgres
def test_the_migration_gives_old_events_the_shard_the_store_gives():
    import importlib

    fill = importlib.import_module("project.migrations.0001_fill_event_shards").fill
    by_partition = customers_over(2)
    for cids in by_partition.values():
        talk(cids[0], rounds=1)
    stored = dict(StoredEvent.objects.values_list("position", "shard"))
    assert all(s is not None for s in stored.values())
    StoredEvent.objects.update(shard=None)
    with connection.schema_editor() as editor:
        fill(None, editor)
    assert dict(StoredEvent.objects.values_list("position", "shard")) == stored


class Socket:
    """A listener that records the positions it is offered, in order."""

    def __init__(self) -> None:
        self.audience, self.listener_id, self.principal = AGENTS, "s", None
        self.got: list[int] = []

    async def offer(self, cursor: Cursor, texts: tuple[str, ...]) -> None:
        self.got.append(cursor.position)

    async def send_text(self, text: str) -> None: ...

    async def resync(self) -> None: ...

    async def revoke(self, detail: str) -> None: ...


def envelope(position: int) -> list[Any]:
    return Envelope(Cursor(0, position), str(uuid.UUID(int=position)), (), ("{}",)).wire()


def test_a_dispatcher_hands_the_partitions_events_on_in_log_order_once_every_partition_has_come_past(settings):
    settings.PARLEY_PIPELINE_PARTITIONS = 2
    dispatcher = Dispatcher()
    dispatcher._start_at(Cursor(0, 0))
    socket = Socket()
    dispatcher.audiences[AGENTS].add(socket)

    async def scenario() -> None:
        await dispatcher._on_batch(Cursor(0, 0), Cursor(0, 4), [envelope(3), envelope(4)], partition=1)
        assert socket.got == []  # partition 0 may still have events before them
        await dispatcher._on_batch(Cursor(0, 0), Cursor(0, 6), [envelope(1), envelope(2), envelope(5), envelope(6)], 0)
        assert socket.got == [1, 2, 3, 4]  # partition 1 has come to 4 only
        await dispatcher._on_batch(Cursor(0, 4), Cursor(0, 7), [envelope(7)], partition=1)
        await dispatcher._on_batch(Cursor(0, 4), Cursor(0, 7), [envelope(7)], partition=1)  # published twice
        await dispatcher._on_batch(Cursor(0, 6), Cursor(0, 7), [], partition=0)

    asyncio.run(scenario())
    assert socket.got == [1, 2, 3, 4, 5, 6, 7]
    assert dispatcher.cursor == Cursor(0, 7)


def test_workers_refuse_checkpoints_made_for_another_number_of_partitions_until_repartitioned(settings):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    by_partition = customers_over(2, per_partition=1)
    talk(by_partition[0][0], rounds=1)
    catch_up(PIPELINE)  # one partition: the checkpoint "pipeline"
    settings.PARLEY_PIPELINE_PARTITIONS = 2
    with pytest.raises(partitions.LayoutMismatch, match="repartition --partitions 2"):
        partitions.check_layout(PIPELINE)
    talk(by_partition[1][0], rounds=1)  # the log moved on: "pipeline" is behind it
    with pytest.raises(CommandError, match="behind: pipeline at"):
        call_command("repartition", "--partitions", "2", stdout=io.StringIO())
    settings.PARLEY_PIPELINE_PARTITIONS = 1
    catch_up(PIPELINE)
    call_command("repartition", "--partitions", "2", stdout=io.StringIO())
    settings.PARLEY_PIPELINE_PARTITIONS = 2
    partitions.check_layout(PIPELINE)  # no complaint
    head = EventStore().head()
    assert set(partitions.checkpoints(PIPELINE).values()) == {head}
    assert not Checkpoint.objects.filter(name=PIPELINE).exists()
    before = read_models()
    catch_up(PIPELINE)  # nothing is applied again
    assert read_models() == before
