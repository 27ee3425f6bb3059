"""rebuild_readmodels while the pipeline runs and messages keep coming.

Real threads: one keeps sending messages, one runs the pipeline as a worker
does, one keeps reading the read models, and the rebuild runs in the main
thread. The rebuild must not be refused, readers must never see an empty
or shrunken table, and the result must hold every event, those appended
during the rebuild included, exactly as a replay of the log builds it.

On PostgreSQL the same again with the bulk folded in two forked processes
(readmodels.rebuild.PROCESSES), and a forked process that fails or dies
fails the rebuild and leaves the live tables as they were.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from chat.commands import Actor, MarkMessageAsRead, SendMessage
from chat.events import SenderKind
from chat.handlers import mark_message_as_read, send_message
from customers.services import customer_register
from project.bootstrap import pipeline
from readmodels import rebuild as rebuild_module
from readmodels.models import Badge, Conversation, TimelineMessage
from tests.support.waiting import wait_until
from workers.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = Actor(SenderKind.AGENT, "1", "Grace")


def snapshot() -> dict[str, list[tuple]]:  # type: ignore[type-arg]
    return {
        "timeline": sorted(TimelineMessage.objects.values_list("message_id", "body", "read_at", "position")),
        "conversations": sorted(Conversation.objects.values_list("customer_id", "unread_for_agents", "position")),
        "badges": sorted(Badge.objects.values_list("customer_id", "unread", "position")),
    }


@pytest.fixture(params=["here", pytest.param("forked", marks=pytest.mark.postgres)])
def folds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Where the bulk of each rebuild is folded: in this process, or in two forked ones
    (whatever the log's length); the list counts the rebuilds that forked."""
    forked: list[int] = []
    if request.param == "forked":
        monkeypatch.setattr(rebuild_module, "PROCESSES", 2)
        monkeypatch.setattr(rebuild_module, "PARALLEL_FROM", 0)
        fold_apart = rebuild_module._fold_apart

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            forked.append(args[3])
            return fold_apart(*args, **kwargs)

        monkeypatch.setattr(rebuild_module, "_fold_apart", counted)
    return forked


def test_a_rebuild_while_the_pipeline_runs_and_messages_arrive_loses_nothing_and_blanks_nothing(
    folds: list[int], request: pytest.FixtureRequest,
):
    customers = [customer_register(name=f"Live {i}").customer for i in range(4)]
    sent: list[uuid.UUID] = []
    stop_writing, stop_reading = threading.Event(), threading.Event()
    seen_counts: list[int] = []
    during: list[int] = []  # what readers saw while the rebuild ran
    rebuilding = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            i = 0
            while not stop_writing.is_set():
                c = customers[i % len(customers)]
                mid = uuid.uuid4()
                send_message(SendMessage(mid, c.id, AGENT, f"live {i}"))
                sent.append(mid)
                if i % 3 == 0:  # some are read at once, so badges go up and down
                    mark_message_as_read(MarkMessageAsRead(mid, Actor(SenderKind.CUSTOMER, str(c.id))))
                i += 1
                time.sleep(0.01)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def read() -> None:
        try:
            while not stop_reading.is_set():
                n = TimelineMessage.objects.count()
                seen_counts.append(n)
                if rebuilding.is_set():
                    during.append(n)
                time.sleep(0.005)
        finally:
            connection.close()

    def run_pipeline(stop: threading.Event) -> None:
        async def main() -> None:
            done = asyncio.Event()
            task = asyncio.create_task(Worker(pipeline(), poll_interval=0.05).run(done))
            while not stop.is_set():
                await asyncio.sleep(0.02)
            done.set()
            await task

        asyncio.run(main())

    stop_pipeline = threading.Event()
    threads = [threading.Thread(target=write), threading.Thread(target=read), threading.Thread(target=run_pipeline, args=(stop_pipeline,))]
    for t in threads:
        t.start()
    try:
        # The pipeline has projected a first stretch.
        wait_until(lambda: errors or (seen_counts and seen_counts[-1] > 0), "nothing projected before the rebuild", 30)
        assert not errors, errors
        out = io.StringIO()
        rebuilding.set()
        call_command("rebuild_readmodels", "--batch-size", "7", stdout=out)
        rebuilding.clear()
        time.sleep(0.5)  # appended after the rebuild, too
    finally:
        stop_writing.set()
        stop_reading.set()
        time.sleep(1.0)  # the pipeline catches up with the last writes
        stop_pipeline.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert "rebuilt directory, timeline, unread, badge, conversations" in out.getvalue()

    # Readers never saw the table empty or shrink while the rebuild ran (or ever): it only grew.
    assert during and min(during) > 0
    assert all(b >= a for a, b in zip(seen_counts, seen_counts[1:])), "a reader saw the timeline shrink"

    pipeline().catch_up()
    live = snapshot()
    assert {m for m, *_ in live["timeline"]} == set(sent)  # every message, those sent during the rebuild included
    call_command("rebuild_readmodels", stdout=io.StringIO())  # a quiet replay of the whole log
    assert snapshot() == live
    assert folds == ([2, 2] if "forked" in request.node.callspec.id else [])


def _rebuild_schemas() -> list[str]:
    with connection.cursor() as c:
        c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'parley_rebuild_%%' OR nspname LIKE 'parley_replaced_%%'")
        return [row[0] for row in c.fetchall()]


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_forked_fold_that_fails_fails_the_rebuild_and_leaves_the_live_tables(how: str, monkeypatch: pytest.MonkeyPatch):
    from readmodels.projections import read_models

    customers = [customer_register(name=f"Kept {i}").customer for i in range(6)]
    for i in range(30):
        send_message(SendMessage(uuid.uuid4(), customers[i % len(customers)].id, AGENT, f"kept {i}"))
    pipeline().catch_up()
    before = snapshot()
    assert len(before["timeline"]) == 30
    monkeypatch.setattr(rebuild_module, "PROCESSES", 2)
    monkeypatch.setattr(rebuild_module, "PARALLEL_FROM", 0)
    replay = rebuild_module._replay

    def failing_share(engine, unit, cursor, until, size, counts, partition):  # type: ignore[no-untyped-def]
        if partition.count == 2 and partition.index == 1:  # the second forked process only
            if how == "dies":
                import os

                os._exit(3)
            raise ValueError("a projection failed in the second share")
        return replay(engine, unit, cursor, until, size, counts, partition)

    monkeypatch.setattr(rebuild_module, "_replay", failing_share)
    with pytest.raises(RuntimeError) as failed:
        rebuild_module.rebuild(read_models())
    if how == "dies":
        assert "rebuild-fold-1 died (exit code 3)" in str(failed.value)
    else:
        assert "rebuild-fold-1 failed" in str(failed.value) and "a projection failed" in str(failed.value)
    assert snapshot() == before  # the live tables were never touched
    assert _rebuild_schemas() == []  # and the new ones are gone
    monkeypatch.setattr(rebuild_module, "_replay", replay)
    rebuild_module.rebuild(read_models())  # the next rebuild, forked again, succeeds
    assert snapshot() == before
