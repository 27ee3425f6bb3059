"""The JSON log format, the optional multiprocess aggregation, the metrics bind, and
the frames a full buffer drops: the pieces of observability that need no database."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from eventstore.events import Cursor
from observability import exposition
from observability.logs import JsonFormatter, event_fields
from realtime import delivery
from tests.support.metrics import parse, value

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("parley.test")
    try:
        raise ValueError("the projection broke")
    except ValueError:
        return logger.makeRecord(
            "parley.test", logging.ERROR, __file__, 1, "consumer %s failed on event %s", ("pipeline", "e-1"),
            sys.exc_info(), extra=extra,
        )


def test_a_json_record_carries_the_message_the_extra_fields_and_the_traceback():
    fields = event_fields("pipeline", "3f1b", 42, member="badge")
    out = json.loads(JsonFormatter().format(_record(**fields)))
    assert out["message"] == "consumer pipeline failed on event e-1"
    assert (out["level"], out["logger"]) == ("ERROR", "parley.test")
    assert (out["consumer"], out["event_id"], out["position"], out["member"]) == ("pipeline", "3f1b", 42, "badge")
    assert "ValueError: the projection broke" in out["exception"]
    assert out["time"].endswith("+00:00")
    assert "args" not in out and "msg" not in out and "exc_info" not in out


def test_a_field_that_is_not_json_is_written_as_text():
    import uuid

    event_id = uuid.uuid4()
    assert json.loads(JsonFormatter().format(_record(event=event_id)))["event"] == str(event_id)


def _django(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PARLEY_", "DATABASE_URL"))}
    environ.update(DJANGO_SETTINGS_MODULE="project.settings", PARLEY_DEBUG="1", DJANGO_SECRET_KEY="x" * 50, **env)
    return subprocess.run(
        [sys.executable, "-c", f"import django, logging; django.setup(); {code}"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60,
    )


def test_parley_log_format_json_makes_every_record_one_json_line():
    run = _django(
        "logging.getLogger('eventstore.runner').error('failed on %s', 'e-1', extra={'event_id': 'e-1', 'position': 7})",
        PARLEY_LOG_FORMAT="json",
    )
    assert run.returncode == 0, run.stderr
    [line] = [ln for ln in run.stderr.splitlines() if ln.startswith("{")]
    out = json.loads(line)
    assert (out["message"], out["event_id"], out["position"], out["logger"]) == ("failed on e-1", "e-1", 7, "eventstore.runner")


def test_the_default_log_format_stays_plain_text():
    run = _django("logging.getLogger('eventstore.runner').error('failed on %s', 'e-1', extra={'event_id': 'e-1'})")
    assert run.returncode == 0, run.stderr
    [line] = [ln for ln in run.stderr.splitlines() if "failed on e-1" in ln]
    assert line.endswith("ERROR eventstore.runner: failed on e-1")


def test_an_unknown_log_format_refuses_to_start():
    run = _django("pass", PARLEY_LOG_FORMAT="xml")
    assert run.returncode != 0 and "PARLEY_LOG_FORMAT must be plain or json" in run.stderr


# -- multiprocess mode (PROMETHEUS_MULTIPROC_DIR) ---------------------------------------------

_COUNT = """
import sys
from observability.metrics import FRAMES_LIVE, WS_AGENTS
FRAMES_LIVE.inc(int(sys.argv[1]))
WS_AGENTS.inc()
print("ready", flush=True)
sys.stdin.read()  # stays alive (its socket open) until the test closes stdin
"""
_SCRAPE = """
from observability import exposition
body, _ = exposition.render(exposition.registry())
print(body.decode())
"""


def _python(code: str, directory: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kwargs,  # type: ignore[call-overload]
    )


def _scrape(directory: Path) -> dict:  # type: ignore[type-arg]
    out, _ = _python(_SCRAPE, directory).communicate(timeout=60)
    return parse(out)


def test_multiprocess_mode_sums_the_hosts_processes_and_forgets_the_open_sockets_of_exited_ones(tmp_path):
    first, second = _python(_COUNT, tmp_path, "2"), _python(_COUNT, tmp_path, "3")
    try:
        for p in (first, second):
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        both = _scrape(tmp_path)
        assert value(both, "parley_websocket_frames_sent_total", source="live") == 5
        assert value(both, "parley_websocket_connections", audience="agent") == 2
        first.communicate(input="", timeout=60)  # it exits: its counts stay, its open socket does not
        one = _scrape(tmp_path)
        assert value(one, "parley_websocket_frames_sent_total", source="live") == 5
        assert value(one, "parley_websocket_connections", audience="agent") == 1
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.communicate(input="", timeout=60)


# -- the bind of runworkers -------------------------------------------------------------------


@pytest.mark.parametrize(("bind", "parsed"), [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9", ("::1", 9))])
def test_binds_are_host_and_port(bind, parsed):
    assert exposition.parse_bind(bind) == parsed


@pytest.mark.parametrize("bind", ["9464", "localhost", ":9464", "host:port"])
def test_a_bind_without_host_and_port_is_refused(bind):
    with pytest.raises(ValueError, match="host:port"):
        exposition.parse_bind(bind)


def test_the_bind_serves_this_process_metrics_in_text_format():
    port = free_port()
    server, thread = exposition.serve(f"127.0.0.1:{port}", exposition.registry())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            samples = parse(r.read().decode())
        assert ("parley_websocket_frames_sent_total", frozenset({("source", "live")})) in samples
    finally:
        server.shutdown()
        server.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


# -- frames a full buffer drops ---------------------------------------------------------------


def test_a_replaying_socket_whose_buffer_fills_counts_every_frame_it_drops(monkeypatch):
    monkeypatch.setattr(delivery, "BUFFER_LIMIT", 2)
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    def dropped() -> float:
        return REGISTRY.get_sample_value("parley_websocket_frames_dropped_total", {"reason": "buffer_full"}) or 0.0

    def live() -> float:
        return REGISTRY.get_sample_value("parley_websocket_frames_sent_total", {"source": "live"}) or 0.0

    async def main() -> None:
        d = delivery.Delivery(send, Cursor(0, 0))  # holds offers until the client resumes
        before, live_before = dropped(), live()
        await d.offer(Cursor(0, 1), ("a", "b"))
        await d.offer(Cursor(0, 2), ("c",))
        assert dropped() == before
        await d.offer(Cursor(0, 3), ("d",))  # the buffer is full: everything held is dropped
        assert dropped() == before + 4
        await d.offer(Cursor(0, 4), ("e", "f"))  # and what follows until the replay reads the log
        assert dropped() == before + 6
        assert d.take_overflow() and sent == []
        await d.end_replay(None)
        await d.offer(Cursor(0, 5), ("g",))
        assert sent == ["g"] and live() == live_before + 1

    asyncio.run(main())
