"""PostgreSQL goes away and comes back under a running server.

The test runs its own PostgreSQL cluster (``initdb`` into a temporary
directory, ``pg_ctl`` on a spare port), never the shared one, stops it
with ``-m immediate`` while a ``manage.py serve`` process (web, websockets
and workers on that cluster) is up, and kills whatever is left at the end.

While it is down: sends, reads and logins answer ``503`` with the error
shape (code ``unavailable``) and ``Retry-After``, not Django's HTML 500 after
the old 10 s pool wait; a ``resume`` on an open socket gets an error frame
and close 4000 (reconnect and resume), not 1011. After it is back: every
new socket opens and resumes and every request succeeds, on each of the
realtime database threads and pooled connections, though each of them
held a connection from before the restart.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.e2e.conftest import Stack, free_port, http, start_stack, stop_stack

pytestmark = pytest.mark.e2e

#: Realtime database threads of the server: the test uses more sockets than this on each side of the outage.
DB_THREADS = 3


class OwnPostgres:
    """A PostgreSQL cluster of this test's own: initdb, start, stop -m immediate, kill."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found and not shutil.which("initdb"):
            pytest.fail("no PostgreSQL server binaries (initdb) on this machine: the outage test needs a cluster of its own")
        self.bin = Path(found[-1]).parent if found else Path(shutil.which("initdb") or "").parent
        self.root = Path(tempfile.mkdtemp(prefix="parley-own-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        """As a crash or an operator's emergency stop would: every connection is cut at once."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def kill(self) -> None:
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.SubprocessError:
            pass
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def stack_on_own_postgres(tmp_path: Path, own_postgres: OwnPostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("DATABASE_URL", own_postgres.url("postgres"))
    monkeypatch.delenv("REDIS_URL", raising=False)  # one embedded process: its own channel layer
    stack, drop = start_stack(tmp_path, extra_env={"PARLEY_REALTIME_DB_THREADS": str(DB_THREADS)})
    try:
        yield stack
    finally:
        stop_stack(stack)
        try:
            drop()
        except Exception:
            pass  # the cluster goes anyway


def timed(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any, float, dict[str, str]]:
    """http(), with how long the answer took and its headers (for Retry-After)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw, status, headers = err.read(), err.code, dict(err.headers)
    elapsed = time.monotonic() - started
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")[:200]
    return status, parsed, elapsed, headers


async def resumed(stack: Stack, token: str) -> dict[str, Any]:
    """Open a socket, resume from 0, and return the ``resumed`` frame (its close code if it closed)."""
    async with websockets.connect(stack.ws_url(token), open_timeout=20) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if frame["type"] in ("resumed", "error"):
                    return frame
        except websockets.ConnectionClosed:
            return {"type": "closed", "code": ws.close_code}


def send(stack: Stack, token: str, body: str) -> tuple[int, Any, float, dict[str, str]]:
    return timed("POST", f"{stack.url}/api/v1/messages", {"message_id": str(uuid.uuid4()), "body": body}, token)


def test_an_outage_answers_503_and_4000_and_nothing_is_stale_after_the_database_returns(
    stack_on_own_postgres: Stack, own_postgres: OwnPostgres,
):
    stack = stack_on_own_postgres
    token = stack.register_customer()["token"]
    agent_password = stack.agent_password
    assert send(stack, token, "before")[0] == 201

    async def before_and_during() -> tuple[list[dict[str, Any]], dict[str, Any], int | None]:
        # Many resumes at once: every realtime database thread takes (and keeps) a connection.
        warm = await asyncio.gather(*(resumed(stack, token) for _ in range(4 * DB_THREADS)))
        ws = await websockets.connect(stack.ws_url(token), open_timeout=20)
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        while json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] != "resumed":
            pass
        await asyncio.to_thread(own_postgres.stop)
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        error: dict[str, Any] = {}
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame["type"] == "error":
                    error = frame
        except websockets.ConnectionClosed:
            pass
        return warm, error, ws.close_code

    warm, error, close_code = asyncio.run(before_and_during())
    assert all(f["type"] == "resumed" for f in warm), warm
    assert (error.get("code"), close_code) == ("unavailable", 4000)

    answers = {
        "send": send(stack, token, "during"),
        "read": timed("GET", f"{stack.url}/api/v1/messages?after=0", token=token),
        "login": timed("POST", f"{stack.url}/api/v1/auth/agent", {"username": "agent", "password": agent_password}),
    }
    for what, (status, body, elapsed, headers) in answers.items():
        print(f"during the outage, {what}: {status} in {elapsed:.2f} s")
        assert status == 503, (what, status, body)
        assert body["error"]["code"] == "unavailable", (what, body)
        assert int(headers["Retry-After"]) > 0

    own_postgres.start()
    for _ in range(300):  # back when the server says so
        if http("GET", f"{stack.url}/healthz")[0] == 200:
            break
        time.sleep(0.2)

    # Sequential opens: each lands on some realtime thread; more than there are threads, twice over.
    after = [asyncio.run(resumed(stack, token)) for _ in range(4 * DB_THREADS)]
    assert [f["type"] for f in after] == ["resumed"] * len(after), (after, stack.dump_logs())
    sends = [send(stack, token, f"after {i}") for i in range(20)]
    assert [status for status, *_ in sends] == [201] * 20
    last = sends[-1][1]["position"]
    # The workers came back too: the read models catch up with every send.
    status, listed = http("GET", f"{stack.url}/api/v1/messages?after=0&limit=100&min_position={last}", token=token)
    for _ in range(30):
        if status == 200 and len(listed["messages"]) == 21:
            break
        time.sleep(1)
        status, listed = http("GET", f"{stack.url}/api/v1/messages?after=0&limit=100&min_position={last}", token=token)
    assert status == 200, listed
    assert [m["body"] for m in listed["messages"]] == ["before"] + [f"after {i}" for i in range(20)], stack.dump_logs()
