"""Metrics of real processes: `runworkers` on PARLEY_METRICS_BIND, Daphne's /metrics
behind PARLEY_METRICS_KEY, each reporting its own counts; logs as JSON lines."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, free_port, http, start_stack, stop_stack
from tests.support.metrics import Samples, parse, value

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

KEY = secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    bind = f"127.0.0.1:{free_port()}"
    stack, drop = start_stack(
        tmp_path_factory.mktemp("metrics"), web=1, separate_workers=True,
        extra_env={"PARLEY_METRICS_BIND": bind, "PARLEY_METRICS_KEY": KEY, "PARLEY_LOG_FORMAT": "json"},
    )
    try:
        yield stack, bind
    finally:
        stop_stack(stack)
        drop()


def get(url: str, token: str | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def workers(bind: str) -> Samples:
    status, content_type, body = get(f"http://{bind}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    return parse(body)


def eventually(check, what: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something true (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def test_the_workers_bind_reports_the_pipeline_catching_up_and_its_own_counters(observed):
    stack, bind = observed
    eventually(lambda: value(workers(bind), "parley_consumer_running", consumer="pipeline") == 1, "the lease")
    customer = stack.register_customer()
    status, sent = http(
        "POST", f"{stack.url}/api/v1/messages", {"message_id": str(uuid.uuid4()), "body": "hello"},
        token=customer["token"],
    )
    assert status == 201, sent

    def caught_up() -> Samples | None:
        samples = workers(bind)
        done = value(samples, "parley_consumer_position", consumer="pipeline") >= sent["position"]
        return samples if done and value(samples, "parley_consumer_lag_events", consumer="pipeline") == 0 else None

    samples = eventually(caught_up, "the pipeline catching up")
    assert value(samples, "parley_log_position") >= sent["position"]
    # Its own process's counters: push delivery runs here, the command ran in Daphne.
    assert ("parley_push_requests_total", frozenset({("outcome", "sent")})) in samples
    assert value(samples, "parley_command_duration_seconds_count", command="SendMessage", adapter="http") == 0

    status, _, body = get(f"{stack.url}/metrics", KEY)
    assert status == 200
    web = parse(body)
    assert value(web, "parley_command_duration_seconds_count", command="SendMessage", adapter="http") == 1
    assert value(web, "parley_commands_total", command="SendMessage", adapter="http", result="appended") == 1


def test_daphne_answers_metrics_only_to_the_key(observed):
    stack, _ = observed
    status, content_type, body = get(f"{stack.url}/metrics")
    assert (status, content_type) == (401, "application/json")
    assert json.loads(body)["error"]["code"] == "not_authenticated"
    status, _, body = get(f"{stack.url}/metrics", "not-" + KEY)
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_token"


def test_the_processes_log_json_lines(observed):
    stack, bind = observed
    lines = [json.loads(ln) for ln in (stack.logs / "workers.log").read_text().splitlines() if ln.startswith("{")]
    messages = [ln["message"] for ln in lines if ln["logger"] == "project.bootstrap"]
    assert f"metrics at http://{bind}/metrics" in messages
    assert any(m.startswith("workers running: ") for m in messages)
