"""GET /metrics: who may read it, that it is Prometheus' format, and that its values
follow what really happened (commands, the pipeline's lag, push, inbound webhooks)."""

from __future__ import annotations

import logging
import socket
import urllib.request
import uuid
from typing import Any

import pytest
from django.test import Client

from eventstore.models import StoredEvent
from project.bootstrap import pipeline, serve_metrics
from tests.integration.test_inbound_webhooks import deliver, payload
from tests.integration.test_push_support import (
    agent_says,
    make_worker,
    push,  # noqa: F401  (fixture)
    run_pipeline,
    subscribe,
    vapid_keys,  # noqa: F401  (fixture)
)
from tests.support.metrics import Samples, families, parse, value

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "metrics-key-for-tests"


@pytest.fixture
def metrics_key(settings: Any) -> str:
    settings.PARLEY_METRICS_KEY = KEY
    return KEY


def scrape(client: Client | None = None) -> Samples:
    r = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {KEY}")
    assert r.status_code == 200, r.content
    return parse(r.content.decode())


# -- who may read it -------------------------------------------------------------------


def test_without_a_key_configured_metrics_is_an_unknown_path(client, settings):
    settings.PARLEY_METRICS_KEY = ""
    unknown = client.get("/no-such-page")
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer "}, {"HTTP_AUTHORIZATION": "Bearer anything"}):
        r = client.get("/metrics", **headers)
        assert r.status_code == 404 == unknown.status_code
        assert r["Content-Type"] == unknown["Content-Type"]
        assert r.content == unknown.content


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "not_authenticated"),
        ("Bearer", "not_authenticated"),
        ("Bearer wrong-key", "invalid_token"),
        (f"Bearer {KEY}x", "invalid_token"),
        (f"Basic {KEY}", "invalid_token"),
    ],
)
def test_a_missing_or_wrong_key_is_401_in_the_error_shape(client, metrics_key, authorization, code):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    r = client.get("/metrics", **headers)
    assert r.status_code == 401
    assert r["Content-Type"] == "application/json"
    assert r.json() == {"error": {"code": code, "detail": r.json()["error"]["detail"]}}
    assert r["WWW-Authenticate"].startswith("Bearer")
    assert b"parley_" not in r.content


def test_the_right_key_gets_prometheus_text_with_every_parley_metric(client, metrics_key):
    r = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {KEY}")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/plain; version=")
    assert r["Cache-Control"] == "no-store"
    found = families(r.content.decode())
    assert {
        "parley_command_duration_seconds": "histogram",
        "parley_commands": "counter",
        "parley_consumer_position": "gauge",
        "parley_consumer_lag_events": "gauge",
        "parley_consumer_running": "gauge",
        "parley_consumer_errors": "counter",
        "parley_db_analyses": "counter",
        "parley_log_position": "gauge",
        "parley_websocket_connections": "gauge",
        "parley_websocket_frames_sent": "counter",
        "parley_websocket_frames_dropped": "counter",
        "parley_websocket_resyncs": "counter",
        "parley_push_requests": "counter",
        "parley_push_deliveries_finished": "counter",
        "parley_inbound_webhooks": "counter",
    }.items() <= found.items()


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(client, metrics_key):
    r = client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {KEY}", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )
    assert r.status_code == 200
    assert r["Content-Type"].startswith("application/openmetrics-text")
    assert r.content.rstrip().endswith(b"# EOF")


# -- values that follow what happened ------------------------------------------------------


def test_a_command_over_http_counts_once_with_its_latency_and_result(metrics_key, customer):
    before = scrape()
    mid = str(uuid.uuid4())
    assert customer.post("/api/v1/messages", {"message_id": mid, "body": "hello"}).status_code == 201
    after = scrape()
    labels = {"command": "SendMessage", "adapter": "http"}
    assert value(after, "parley_command_duration_seconds_count", **labels) == (
        value(before, "parley_command_duration_seconds_count", **labels) + 1
    )
    assert value(after, "parley_command_duration_seconds_sum", **labels) > value(
        before, "parley_command_duration_seconds_sum", **labels
    )
    assert value(after, "parley_commands_total", **labels, result="appended") == (
        value(before, "parley_commands_total", **labels, result="appended") + 1
    )

    # The same send again appends nothing; another body under the same id is refused.
    assert customer.post("/api/v1/messages", {"message_id": mid, "body": "hello"}).status_code == 200
    assert customer.post("/api/v1/messages", {"message_id": mid, "body": "other"}).status_code == 409
    last = scrape()
    assert value(last, "parley_commands_total", **labels, result="unchanged") == (
        value(after, "parley_commands_total", **labels, result="unchanged") + 1
    )
    assert value(last, "parley_commands_total", **labels, result="refused") == (
        value(after, "parley_commands_total", **labels, result="refused") + 1
    )
    assert value(last, "parley_command_duration_seconds_count", **labels) == (
        value(after, "parley_command_duration_seconds_count", **labels) + 2
    )

    read = {"command": "MarkMessageAsRead", "adapter": "http"}
    before_read = value(last, "parley_command_duration_seconds_count", **read)
    agent_side = customer.post(f"/api/v1/messages/{mid}/read")  # a customer may not mark its own message
    assert agent_side.status_code == 403
    assert value(scrape(), "parley_command_duration_seconds_count", **read) == before_read + 1


def test_the_pipelines_lag_is_read_at_scrape_time_and_drops_to_zero_once_processed(metrics_key, customer, project):
    project()
    caught_up = scrape()
    assert value(caught_up, "parley_consumer_lag_events", consumer="pipeline") == 0

    r = customer.post("/api/v1/messages", {"message_id": str(uuid.uuid4()), "body": "anyone there?"})
    assert r.status_code == 201
    position = r.json()["position"]
    waiting = scrape()
    assert value(waiting, "parley_consumer_lag_events", consumer="pipeline") == 1
    assert value(waiting, "parley_log_position") == position
    assert value(waiting, "parley_consumer_position", consumer="pipeline") < position
    assert value(waiting, "parley_consumer_running", consumer="pipeline") == 0  # nothing holds its lease

    runner = pipeline()
    assert runner.acquire_lease()
    assert value(scrape(), "parley_consumer_running", consumer="pipeline") == 1
    runner.release_lease()

    project()
    done = scrape()
    assert value(done, "parley_consumer_lag_events", consumer="pipeline") == 0
    assert value(done, "parley_consumer_position", consumer="pipeline") == position == value(done, "parley_log_position")


def test_push_outcomes_count_by_what_the_push_service_answered(metrics_key, push, vapid_keys, customer, agent, caplog):
    phone = subscribe(push, customer, vapid_keys)
    before = scrape()
    agent_says(agent, customer, "sent fine")
    run_pipeline()
    make_worker().drain()
    sent = scrape()
    assert len(phone.payloads()) == 1
    assert value(sent, "parley_push_requests_total", outcome="sent") == value(before, "parley_push_requests_total", outcome="sent") + 1
    assert value(sent, "parley_push_deliveries_finished_total", state="sent") == (
        value(before, "parley_push_deliveries_finished_total", state="sent") + 1
    )

    phone.push.fail_next(400)  # refused for good: the row is dead, and the log names its event
    with caplog.at_level(logging.WARNING, logger="notifications.worker"):
        _, position = agent_says(agent, customer, "refused")
        run_pipeline()
        make_worker().drain()
    refused = scrape()
    assert value(refused, "parley_push_requests_total", outcome="refused") == (
        value(sent, "parley_push_requests_total", outcome="refused") + 1
    )
    assert value(refused, "parley_push_deliveries_finished_total", state="dead") == (
        value(sent, "parley_push_deliveries_finished_total", state="dead") + 1
    )
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    event_id = StoredEvent.objects.get(position=position).event_id
    assert (record.consumer, record.event_id, record.position) == ("push-delivery", str(event_id), position)
    assert str(event_id) in record.getMessage() and f"position {position}" in record.getMessage()

    phone.push.fail_next(410)
    agent_says(agent, customer, "gone")
    run_pipeline()
    make_worker().drain()
    assert value(scrape(), "parley_push_requests_total", outcome="gone") == (
        value(refused, "parley_push_requests_total", outcome="gone") + 1
    )


def test_inbound_deliveries_count_by_source_and_result_and_unknown_sources_share_one_label(metrics_key, settings):
    settings.INBOUND_WEBHOOK_SECRETS = {"sms": ["whsec_sms"]}
    before = scrape()
    raw = payload(event_id="evt_metrics")
    assert deliver(raw, secrets=("whsec_sms",)).status_code == 202
    assert deliver(raw, secrets=("whsec_sms",)).status_code == 202  # the provider's retry
    assert deliver(payload(event_id="evt_forged"), secrets=("not-the-secret",)).status_code == 401
    for made_up in ("x1", "x2", "x3"):
        assert deliver(raw, source=made_up, secrets=("whsec_sms",)).status_code == 404
    after = scrape()

    def moved(source: str, result: str) -> float:
        name = "parley_inbound_webhooks_total"
        return value(after, name, source=source, result=result) - value(before, name, source=source, result=result)

    assert moved("sms", "accepted") == 1
    assert moved("sms", "duplicate") == 1
    assert moved("sms", "invalid_signature") == 1
    assert moved("unknown", "unknown_source") == 3
    assert not [k for k in after if k[0] == "parley_inbound_webhooks_total" and ("source", "x1") in k[1]]


def test_the_workers_bind_serves_the_same_metrics_without_a_key(customer, project):
    """What `runworkers` serves on PARLEY_METRICS_BIND (the e2e tests start the real process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = serve_metrics(f"127.0.0.1:{port}")

    def scrape_bind() -> Samples:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            return parse(r.read().decode())

    try:
        project()
        assert value(scrape_bind(), "parley_consumer_lag_events", consumer="pipeline") == 0
        assert customer.post("/api/v1/messages", {"message_id": str(uuid.uuid4()), "body": "hi"}).status_code == 201
        assert value(scrape_bind(), "parley_consumer_lag_events", consumer="pipeline") == 1
        project()
        assert value(scrape_bind(), "parley_consumer_lag_events", consumer="pipeline") == 0
    finally:
        stop()
