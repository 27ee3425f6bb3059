"""Operating the read models: rebuild, status, health, wake-ups."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from eventstore.runner import ConsumerRunner
from readmodels.models import Badge, TimelineMessage
from readmodels.projections import ReadModels, TimelineProjection
from readmodels.rebuild import rebuild as rebuild_read_models
from tests.conftest import new_id
from workers.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_rebuild_reproduces_what_live_projection_built(customer, agent, project):
    project()
    mid = new_id()
    agent.post(f"/api/v1/conversations/{customer.id}/messages", {"message_id": mid, "body": "hello"})
    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "hi"})
    customer.post(f"/api/v1/messages/{mid}/read")
    project()
    before = sorted(TimelineMessage.objects.values_list("message_id", "body", "read_at", "position"))
    out = io.StringIO()
    call_command("rebuild_readmodels", stdout=out)
    assert "timeline: replayed" in out.getvalue()
    assert sorted(TimelineMessage.objects.values_list("message_id", "body", "read_at", "position")) == before
    assert Badge.objects.get(customer_id=customer.id).unread == 0


def test_readers_see_the_old_rows_while_a_rebuild_runs_never_an_empty_table(customer, project, monkeypatch):
    import readmodels.rebuild as rebuild_module

    # The pause below is seen through events of this process: the fold stays here even
    # where PARLEY_REBUILD_PARALLEL_FROM would fork it (test_rebuild_live covers that path).
    monkeypatch.setattr(rebuild_module, "PROCESSES", 1)
    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "kept visible"})
    project()
    inside, release = threading.Event(), threading.Event()

    class PausingTimeline(TimelineProjection):
        def apply(self, r, unit, facts):
            super().apply(r, unit, facts)
            inside.set()
            release.wait(10)

    def rebuild():
        try:
            rebuild_read_models([PausingTimeline()])
        finally:
            connection.close()

    t = threading.Thread(target=rebuild)
    t.start()
    assert inside.wait(10)
    # The rebuild has filled its own copy of the table, beside the live one.
    during = list(TimelineMessage.objects.values_list("body", flat=True))
    release.set()
    t.join()
    assert during == ["kept visible"]
    assert list(TimelineMessage.objects.values_list("body", flat=True)) == ["kept visible"]


def _live_snapshot() -> list[tuple]:  # type: ignore[type-arg]
    return sorted(TimelineMessage.objects.values_list("message_id", "body", "read_at", "position"))


def _index_definitions() -> list[str]:
    with connection.cursor() as c:
        c.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename LIKE 'readmodels_%%'")
        return sorted(row[0] for row in c.fetchall())


@pytest.mark.postgres
def test_a_rebuild_leaves_every_index_the_migrations_made(customer, project):
    # The rebuilt tables get their plain indexes after their rows (written over
    # connections of their own): the swapped-in tables must have them all, by name.
    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "indexed"})
    project()
    before = _index_definitions()
    assert any("USING gin" in d for d in before) and len(before) > 20
    call_command("rebuild_readmodels", stdout=io.StringIO())
    assert _index_definitions() == before
    for name in ("search", "erasure"):  # one read model alone; one with no table of its own
        call_command("rebuild_readmodels", only=[name], stdout=io.StringIO())
    assert _index_definitions() == before
    with connection.cursor() as c:  # and nothing of the rebuild is left behind
        c.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'parley_re%%'")
        assert c.fetchone()[0] == 0


@pytest.mark.postgres
def test_a_swap_given_up_for_a_reader_applies_the_pipelines_new_events_on_the_next_try(customer, project, monkeypatch):
    """A reader holding a live table past the lock timeout makes the swap try again; what the
    pipeline projected while the rebuild ran must be in the tables that are swapped in."""
    import psycopg

    import readmodels.rebuild as rebuild_module
    from readmodels.projections import read_models

    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "before the rebuild"})
    project()
    monkeypatch.setattr(rebuild_module, "SWAP_LOCK_TIMEOUT_MS", 300)
    reader = psycopg.connect(**connection.get_connection_params())
    attempts: list[int] = []
    original = rebuild_module._lock_pipeline

    def lock_pipeline():  # runs at the start of each swap attempt
        if not attempts:
            # Meanwhile a message comes and the pipeline projects it (the swap's catch-up),
            # and a reader holds the badge table in an open transaction.
            def meanwhile() -> None:
                try:
                    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "during the rebuild"})
                    project()
                finally:
                    connection.close()

            t = threading.Thread(target=meanwhile)
            t.start()
            t.join()
            reader.execute("LOCK TABLE readmodels_badge IN ACCESS SHARE MODE")
        else:
            reader.rollback()  # the reader is done
        attempts.append(1)
        return original()

    monkeypatch.setattr(rebuild_module, "_lock_pipeline", lock_pipeline)
    try:
        rebuild_read_models(read_models())
    finally:
        reader.close()
    assert len(attempts) == 2  # the first attempt gave up, the second swapped
    rebuilt = _live_snapshot()
    assert {body for _, body, *_ in rebuilt} == {"before the rebuild", "during the rebuild"}
    monkeypatch.undo()
    call_command("rebuild_readmodels", stdout=io.StringIO())  # a quiet replay builds the same
    assert _live_snapshot() == rebuilt


def test_rebuild_refuses_an_unknown_projection():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("rebuild_readmodels", only=["nope"])


def test_status_and_healthz_report_the_pipelines_position_and_lag(customer, project):
    r = customer.post("/api/v1/messages", {"message_id": new_id(), "body": "x"})
    position = r.json()["position"]
    out = io.StringIO()
    call_command("readmodels_status", stdout=out)
    lines = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[1:]}
    assert int(lines["pipeline"][2]) >= 1  # lag before projecting
    assert "not running" in out.getvalue()
    # Events wait and nothing runs the pipeline: live delivery stands still, and health says so.
    assert Client().get("/healthz").status_code == 503
    project()
    health = Client().get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["database"] == "ok" and body["channel_layer"] == "ok"
    assert body["consumers"]["pipeline"]["position"] == position
    assert body["consumers"]["pipeline"]["lag"] == 0


def test_healthz_names_lease_holders_and_shows_error_details_only_to_the_metrics_key(settings, project):
    import uuid

    from eventstore.models import Checkpoint
    settings.PARLEY_METRICS_KEY = "operator-key"
    project()
    now = dt.datetime.now(dt.timezone.utc)
    stuck_on = uuid.uuid4()
    Checkpoint.objects.filter(name="pipeline").update(
        owner="web-7.internal:4242:abc", lease_until=now + dt.timedelta(minutes=5),
        # What a runner records when a member raises: the exception's own text, which may quote data.
        error_event_id=stuck_on, error_position=41, error_member="search",
        error_detail='IntegrityError: duplicate key value (email)=(grace@example.com) at db-3.internal', error_at=now)
    anyone = Client().get("/healthz").json()["consumers"]["pipeline"]
    assert "owner" not in anyone and anyone["running"] is True
    # Anyone learns that the group is stuck, and where; not why.
    assert anyone["error"] == {"position": 41, "since": now.isoformat()}
    public = Client().get("/healthz").content.decode()
    for hidden in ("web-7", "IntegrityError", "grace@example.com", "db-3", str(stuck_on)):
        assert hidden not in public
    wrong = Client().get("/healthz", HTTP_AUTHORIZATION="Bearer wrong").json()["consumers"]["pipeline"]
    assert "owner" not in wrong and "detail" not in wrong["error"]
    operator = Client().get("/healthz", HTTP_AUTHORIZATION="Bearer operator-key").json()["consumers"]["pipeline"]
    assert operator["owner"] == "web-7.internal:4242:abc"
    assert operator["error"]["detail"].startswith("IntegrityError: duplicate key")
    assert operator["error"]["event_id"] == str(stuck_on) and operator["error"]["member"] == "search"


def test_healthz_answers_503_when_the_channel_layer_is_down(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        r = Client().get("/healthz")
        assert r.status_code == 503
        assert r.json()["channel_layer"].startswith("error")
        assert r.json()["database"] == "ok"
    finally:
        channel_layers.backends.clear()


def test_a_waiting_worker_is_woken_by_an_append_long_before_its_poll_interval(customer):
    """The poll interval is an hour: only the after-commit wake-up can make it run."""
    projection = ReadModels([TimelineProjection()])

    async def scenario() -> int:
        stop = asyncio.Event()
        worker = Worker(ConsumerRunner(projection), poll_interval=3600)
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.3)  # let it go idle
        await asyncio.to_thread(_send, customer)
        for _ in range(200):
            if await asyncio.to_thread(_timeline_count):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
        return await asyncio.to_thread(_timeline_count)

    assert asyncio.run(scenario()) == 1


def _send(customer) -> None:
    try:
        assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": "wake up"}).status_code == 201
    finally:
        connection.close()


def _timeline_count() -> int:
    try:
        return TimelineMessage.objects.count()
    finally:
        connection.close()


def _read_model_indexes() -> list[tuple[str, str, str]]:
    with connection.cursor() as c:
        c.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'readmodels\\_%%' "
                  "ORDER BY 1, 2")
        return [(t, n, d.replace("public.", "")) for t, n, d in c.fetchall()]


@pytest.mark.postgres
def test_the_read_models_text_keys_have_no_pattern_index_to_write(customer, project):
    """Django gives a CharField key a second, ``varchar_pattern_ops`` index for prefix
    lookups; nothing looks a read model's key up by prefix, and every row written paid
    for it. Migration readmodels 0013 drops them, and a rebuild makes its new tables
    with exactly the indexes the migrated ones have."""
    migrated = _read_model_indexes()
    assert [n for _, n, d in migrated if "pattern_ops" in d] == []
    assert ("readmodels_searchentry", "readmodels_searchentry_pkey") in {(t, n) for t, n, _ in migrated}
    customer.post("/api/v1/messages", {"message_id": new_id(), "body": "hi"})
    project()
    call_command("rebuild_readmodels", stdout=io.StringIO())
    assert _read_model_indexes() == migrated
