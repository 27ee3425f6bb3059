"""Real servers for end-to-end tests: Daphne processes, workers, a database of their own.

``stack`` is the embedded shape (`manage.py serve`: web, sockets and
workers in one process); ``scaled_stack`` is production's (two Daphne
processes and a `runworkers` process on Redis). Both run on PostgreSQL
when DATABASE_URL names it, else on a SQLite file.

Both run with production settings (PARLEY_DEBUG off), so every end-to-end
and browser test also proves that a deployment serves complete pages: the
static files are collected once per session (hashed, compressed) and served
by the processes themselves. Only https is off, as the servers are reached
over plain http on loopback (tests/e2e/test_reverse_proxy.py puts TLS and
nginx in front).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


@dataclass
class Stack:
    urls: list[str]
    env: dict[str, str]
    logs: Path
    agent_username: str = "agent"
    agent_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    commands: dict[str, list[str]] = field(default_factory=dict)
    named: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def kill(self, name: str) -> None:
        """SIGKILL a process of the stack (its whole process group), as a crash would."""
        p = self.named[name]
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def restart(self, name: str) -> None:
        """Start a process of the stack again, with the command it was started with."""
        _start(self, name, self.commands[name])

    @property
    def url(self) -> str:
        return self.urls[0]

    def ws_url(self, token: str, index: int = 0) -> str:
        return self.urls[index].replace("http://", "ws://") + f"/ws/v1/?token={token}"

    def register_customer(self, name: str = "Ada Lovelace", email: str = "ada@example.com") -> dict[str, str]:
        status, body = http(
            "POST", f"{self.url}/api/v1/customers", {"name": name, "email": email, "external_id": str(uuid.uuid4())},
            token=self.env["PARLEY_INTEGRATION_KEY"],
        )
        assert status == 201, body
        return body

    def agent_token(self) -> str:
        status, body = http(
            "POST", f"{self.url}/api/v1/auth/agent", {"username": self.agent_username, "password": self.agent_password}
        )
        assert status == 201, body
        return str(body["token"])

    @property
    def metrics_key(self) -> str:
        return self.env["PARLEY_METRICS_KEY"]

    def dump_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.logs.glob("*.log")))


def _database(tmp: Path) -> tuple[str, Any]:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        return f"sqlite:///{tmp / 'e2e.sqlite3'}", lambda: None
    import psycopg

    name = f"parley_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    # Created and dropped from the server's maintenance database, as
    # pytest-django does: the database DATABASE_URL names need not exist.
    admin = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.rsplit("/", 1)[0] + "/" + name, drop


def _start(stack: Stack, name: str, args: list[str]) -> None:
    log = open(stack.logs / f"{name}.log", "ab")
    p = subprocess.Popen(args, cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack.procs.append(p)
    stack.commands[name] = args
    stack.named[name] = p


def _wait_healthy(stack: Stack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = list(stack.urls)
    while pending and time.monotonic() < deadline:
        for p in stack.procs:
            if p.poll() is not None:
                raise RuntimeError(f"a server process exited early:\n{stack.dump_logs()}")
        try:
            status, _ = http("GET", f"{pending[0]}/healthz")
            if status == 200:
                pending.pop(0)
                continue
        except OSError:
            pass
        time.sleep(0.2)
    if pending:
        raise RuntimeError(f"servers did not become healthy:\n{stack.dump_logs()}")


_collected: dict[str, Path] = {}


def collected_static(env: dict[str, str]) -> Path:
    """``collectstatic`` into a directory of this test session (once)."""
    if "root" not in _collected:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="parley-static-"))
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            cwd=ROOT, env={**env, "PARLEY_STATIC_ROOT": str(root)}, check=True, capture_output=True,
        )
        _collected["root"] = root
    return _collected["root"]


def start_stack(
    tmp: Path, *, web: int = 1, separate_workers: bool = False, extra_env: dict[str, str] | None = None,
    worker_args: tuple[str, ...] = (),
) -> tuple[Stack, Any]:
    """Migrate a fresh database and start the servers: ``web`` × ``serve``, or
    with ``separate_workers`` ``web`` × Daphne and one ``runworkers`` (named
    "workers", with ``worker_args``)."""
    db_url, drop = _database(tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DATABASE_URL=db_url,
        DJANGO_SETTINGS_MODULE="project.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
        PARLEY_KEYS="e2e:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        PARLEY_INTEGRATION_KEY=secrets.token_urlsafe(24),
        # /healthz shows lease holders (host, pid) only with it.
        PARLEY_METRICS_KEY=secrets.token_urlsafe(24),
        # Long polls: live delivery must come from wake-ups (NOTIFY across processes).
        PARLEY_POLL_INTERVAL="30",
        PARLEY_CACHE_KEY_PREFIX=f"e2e-{secrets.token_hex(4)}",
        PARLEY_CHANNEL_PREFIX=f"e2e-{secrets.token_hex(4)}",
        PARLEY_DEBUG="0",
        # Each process's output reaches its log as it is written (Daphne writes its access log to
        # stdout and does not flush it): tests read those logs while the processes run.
        PYTHONUNBUFFERED="1",
        PARLEY_HTTPS="0",
        # Load and fault tests send far faster than a person types; the send
        # budget has tests of its own (tests/integration/test_hardening.py).
        PARLEY_CUSTOMER_SENDS_PER_MINUTE="1000000",
        PARLEY_AGENT_SENDS_PER_MINUTE="1000000",
        PARLEY_CUSTOMER_EDITS_PER_MINUTE="1000000",
        PARLEY_AGENT_EDITS_PER_MINUTE="1000000",
        PARLEY_CUSTOMER_SEARCHES_PER_MINUTE="1000000",
        PARLEY_AGENT_SEARCHES_PER_MINUTE="1000000",
        # Load tests open many sockets of one agent; the cap has a test of its own (test_websocket.py).
        PARLEY_SOCKETS_PER_IDENTITY="1000000",
        PARLEY_CUSTOMER_UPLOADS_PER_MINUTE="1000000",
        PARLEY_AGENT_UPLOADS_PER_MINUTE="1000000",
        # Attachments in the stack's own folder, never the checkout's media/.
        PARLEY_MEDIA_ROOT=str(tmp / "media"),
    )
    env.update(extra_env or {})
    env.setdefault("PARLEY_STATIC_ROOT", str(collected_static(env)))
    if separate_workers and not env.get("REDIS_URL"):
        raise RuntimeError("a multi-process stack needs REDIS_URL")
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(web)]
    stack = Stack(urls, env, logs)
    env["DJANGO_SUPERUSER_PASSWORD"] = stack.agent_password
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run(
        [py, "manage.py", "createsuperuser", "--noinput", "--username", "agent", "--email", "agent@example.com"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )
    for i, url in enumerate(urls):
        port = url.rsplit(":", 1)[1]
        if separate_workers:
            _start(stack, f"daphne-{i}", [py, "-m", "daphne", "-b", "127.0.0.1", "-p", port, "project.asgi:application"])
        else:
            _start(stack, f"serve-{i}", [py, "manage.py", "serve", "--port", port])
    if separate_workers:
        _start(stack, "workers", [py, "manage.py", "runworkers", *worker_args])
    try:
        _wait_healthy(stack)
    except Exception:
        stop_stack(stack)
        drop()
        raise
    return stack, drop


def stop_stack(stack: Stack) -> None:
    for p in stack.procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in stack.procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One `manage.py serve` process: web, websockets and workers together."""
    s, drop = start_stack(tmp_path_factory.mktemp("stack"))
    yield s
    stop_stack(s)
    drop()


@pytest.fixture(scope="module")
def scaled_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two Daphne processes and one `runworkers` process on Redis."""
    s, drop = start_stack(tmp_path_factory.mktemp("scaled"), web=2, separate_workers=True)
    yield s
    stop_stack(s)
    drop()


class RedisServer:
    """A redis-server of the test's own, on a spare port, that the test may stop,
    freeze and restart (never the shared one)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """Stop it dead (SIGKILL): connections drop, and what it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.thaw()
    server.kill()
