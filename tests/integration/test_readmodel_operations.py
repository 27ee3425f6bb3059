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


def test_readers_see_the_old_rows_while_a_rebuild_runs_never_an_empty_table(customer, project):
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


def test_healthz_names_lease_holders_host_and_pid_only_to_the_metrics_key(settings, project):
    from eventstore.models import Checkpoint
    settings.PARLEY_METRICS_KEY = "operator-key"
    project()
    Checkpoint.objects.filter(name="pipeline").update(
        owner="web-7.internal:4242:abc", lease_until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5))
    anyone = Client().get("/healthz").json()["consumers"]["pipeline"]
    assert "owner" not in anyone and anyone["running"] is True
    assert "web-7" not in Client().get("/healthz").content.decode()
    wrong = Client().get("/healthz", HTTP_AUTHORIZATION="Bearer wrong").json()["consumers"]["pipeline"]
    assert "owner" not in wrong
    operator = Client().get("/healthz", HTTP_AUTHORIZATION="Bearer operator-key").json()["consumers"]["pipeline"]
    assert operator["owner"] == "web-7.internal:4242:abc"


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
