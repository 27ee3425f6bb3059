"""Real-time delivery under load: 1,000 customer sockets and a few agents.

Real server processes (started with the helpers of
tests/e2e/conftest.py), one client process holding every socket in one
asyncio loop (``websockets``), ``time.perf_counter`` at both ends of each
measurement:

* customers send ``message.send`` over their sockets at a steady rate
  (open loop, round-robin over the 1,000); the agent socket that answers
  that customer replies at once, over its own socket, when the message
  reaches it;
* delivery latency runs from just before the client writes the frame to
  the ``message.sent`` frame of that message at the receiver (the answering
  agent for a customer's message, the customer for an agent's reply): the
  command and its commit, the projections, the fan-out consumer, the
  channel layer and Daphne are all in between;
* two phases per server shape: a light one (well below capacity: the
  pipeline's own latency) and the target load: a steady 150 customer
  messages/s on Redis (100 for the embedded ``serve``), every fifth one
  answered by the agent, whose reply's badge frame at the customer is
  timed too;
* RSS per idle connection is VmRSS of each Daphne process with every
  socket connected and idle, minus VmRSS before, over the sockets it holds
  (after a few sockets were opened and closed, so lazy imports and
  first-use caches do not count as per-connection cost).

Server shapes: (a) one ``manage.py serve`` process (Daphne and every worker,
in-memory channel layer); (b) two Daphne processes and ``runworkers`` on
Redis with ``RedisPubSubChannelLayer``; (c) the same with the core
``RedisChannelLayer``. In (b) and (c) customers alternate between the two
Daphne processes and each is answered by an agent on the other one, so
every measured delivery crosses processes. Beside them, in the same run, a
bare Channels echo consumer (bench/echo_asgi.py) under Daphne with as many
sockets and the loaded phase's frame rate.

A message that never reached its receiver is *lost* when the fan-out
consumer's checkpoint had passed it (it was sent to the channel layer) and
*queued* when it had not (the pipeline is behind). Everything runs in a
scratch PostgreSQL database (created, migrated, dropped at the end); every
process started here is stopped, on failure too.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/realtime.py

Knobs: BENCH_RT_CUSTOMERS (1000), BENCH_RT_AGENTS (1), BENCH_RT_RATE (customer
messages/s of the loaded phase on Redis, 150), BENCH_RT_SERVE_RATE (the same
for ``serve``, 100), BENCH_RT_REPLY_EVERY (5), BENCH_RT_LIGHT_RATE (5),
BENCH_RT_SECONDS (measured seconds of the loaded phase, 60), BENCH_RT_LIGHT_SECONDS (12),
BENCH_RT_DRAIN (seconds to wait for late deliveries, 15), BENCH_RT_SHAPES
(echo,serve,pubsub; core and split too on request: split is (b) with the
pipeline in one ``runworkers --groups pipeline --no-jobs`` and the other
groups with the jobs in a second ``runworkers``), BENCH_RT_SETTINGS (the servers' settings module,
to try a change), BENCH_RT_DRY=1 (print, leave
docs/benchmarks.md alone), BENCH_RT_KEEP_LOGS=1, BENCH_RT_DEBUG=1 (list
the slowest messages of each phase, with when they were sent, and every
message not delivered). Without REDIS_URL only (a) and the echo run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from bench import common  # noqa: E402  (PostgreSQL scratch databases; PARLEY_DEBUG=0 for the children)
from bench.common import CLK, cpu_of, machine_cpu, percentile, proc_stat  # noqa: E402
from bench.report import table, write_section  # noqa: E402
from tests.e2e import conftest as e2e  # noqa: E402

CUSTOMERS = int(os.environ.get("BENCH_RT_CUSTOMERS", "1000"))
AGENTS = int(os.environ.get("BENCH_RT_AGENTS", "1"))
RATE = float(os.environ.get("BENCH_RT_RATE", "150"))  # customer messages/s, loaded phase on Redis
SERVE_RATE = float(os.environ.get("BENCH_RT_SERVE_RATE", "100"))  # the same, embedded `serve`
REPLY_EVERY = int(os.environ.get("BENCH_RT_REPLY_EVERY", "5"))  # the agent answers every n-th message
SECONDS = float(os.environ.get("BENCH_RT_SECONDS", "60"))
LIGHT_RATE = float(os.environ.get("BENCH_RT_LIGHT_RATE", "5"))
LIGHT_SECONDS = float(os.environ.get("BENCH_RT_LIGHT_SECONDS", "12"))
WARMUP = 3.0  # seconds of each phase before its measured window
DRAIN = float(os.environ.get("BENCH_RT_DRAIN", "15"))
IDLE_SECONDS = 20.0
ECHO_RATE = RATE * (1 + 1 / REPLY_EVERY)  # frames/s: what the loaded phase writes on Redis  # seconds to wait for the last deliveries of a phase
CONNECT_CONCURRENCY = 32  # Twisted listens with a backlog of 50
REDIS_URL = os.environ.get("REDIS_URL", "")
SHAPES = [s.strip() for s in os.environ.get("BENCH_RT_SHAPES", "echo,serve,pubsub").split(",") if s.strip()]
SETTINGS = os.environ.get("BENCH_RT_SETTINGS", "project.settings")
DEBUG = bool(os.environ.get("BENCH_RT_DEBUG"))
KEY = "realtime"
PY = sys.executable
NCPU = os.cpu_count() or 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- measuring processes ----------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    try:
        f = proc_stat(Path(f"/proc/{pid}/stat"))
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / CLK  # utime, stime


def run_queue_seconds(pid: int) -> float:
    """Seconds the threads of ``pid`` have spent runnable but waiting for a core (the kernel's
    run-queue delay, /proc/<pid>/task/*/schedstat; 0 where the kernel keeps no schedstats)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between the listing and the read
    return total / 1e9


def client_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Probe:
    """What each party used between start() and stop().

    CPU as % of one core (the machine has NCPU); ``others`` is every process
    not named here (other work on the machine); PostgreSQL's figure is the
    whole server's. ``pg_sessions``/``pg_commits`` are per second, in the
    scratch database only.
    """

    pids: dict[str, list[int]]
    run: Run | None = None
    start_at: float = 0.0
    before: dict[str, float] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        s = {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}
        for name, pids in self.pids.items():
            s[f"wait_{name}"] = sum(run_queue_seconds(p) for p in pids)
        s["postgres"] = cpu_of("postgres")
        s["redis"] = cpu_of("redis-server")
        s["client"] = client_cpu()
        s["_busy"], s["_total"] = machine_cpu()
        if self.run is not None:
            ((sessions, commits),) = self.run.sql(
                "SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
            s["pg_sessions"], s["pg_commits"] = float(sessions), float(commits)
        return s

    def start(self) -> None:
        self.before = self._sample()
        self.start_at = time.perf_counter()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        wall = time.perf_counter() - self.start_at
        r = {k: (after[k] - self.before[k]) / wall for k in after if not k.startswith("_")}
        for k in list(r):
            if not k.startswith("pg_"):
                r[k] *= 100
        busy = (after["_busy"] - self.before["_busy"]) / max(1e-9, after["_total"] - self.before["_total"])
        r["machine"] = 100 * busy  # share of all cores
        mine = sum(v for k, v in r.items() if k != "machine" and not k.startswith(("pg_", "wait_")))
        r["others"] = max(0.0, 100 * NCPU * busy - mine)
        self.result = r
        return r


def log_findings(logs: Path) -> Counter[str]:
    """Warning and error lines of the server logs, counted by message (start-up notes left out)."""
    found: Counter[str] = Counter()
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ (ERROR|WARNING|CRITICAL) (.*)$", line)
            if m and "VAPID" not in line:
                found[f"{m.group(1)} {m.group(2).strip()[:200]}"] += 1
    return found


# -- the servers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    key: str
    label: str
    web: int
    layer: str | None  # None: in-memory layer, workers inside `serve`
    split: bool = False  # the pipeline in one `runworkers`, the other groups and the jobs in a second

    @property
    def processes(self) -> int:
        """Server processes: the web ones and the workers."""
        return self.web + (2 if self.split else 1 if self.layer else 0)


SHAPE_DEFS = {
    "serve": Shape("serve", "(a) 1 `serve` process: SQLite, in-memory layer", 1, None),
    "pubsub": Shape("pubsub", "(b) 2 Daphne + `runworkers`, Redis pubsub layer", 2, "pubsub"),
    "core": Shape("core", "(c) 2 Daphne + `runworkers`, Redis core layer", 2, "core"),
    "split": Shape("split", "(d) 2 Daphne + `runworkers --groups pipeline` + `runworkers` of the other groups, "
                   "Redis pubsub layer", 2, "pubsub", split=True),
}


class Run:
    """The scratch database, the servers' environment and every process started for them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.dbname = common.scratch_name(KEY)
        self.stacks: list[e2e.Stack] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.created = False
        self.on_sqlite = False
        self.agent_password = secrets.token_urlsafe(12)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        # Production settings (DEBUG off, default poll interval): start_stack()
        # fixes PARLEY_DEBUG=1 and PARLEY_POLL_INTERVAL=0.2 for tests, so the
        # servers are started here with its helpers instead.
        env.update(
            DATABASE_URL=common.url_for(self.dbname),
            DJANGO_SETTINGS_MODULE=SETTINGS,
            DJANGO_SECRET_KEY=secrets.token_urlsafe(40),  # one key: customer tokens stay valid across shapes
            PARLEY_INTEGRATION_KEY=secrets.token_urlsafe(24),
            PARLEY_DEBUG="0",
            LOG_LEVEL="WARNING",
            DJANGO_SUPERUSER_PASSWORD=self.agent_password,
            # Groups and cache keys of this run only, whoever else uses the same Redis.
            PARLEY_CHANNEL_PREFIX=f"bench-rt-{os.getpid()}",
            PARLEY_CACHE_KEY_PREFIX=f"bench-rt-{os.getpid()}",
        )
        self.env = env

    def setup(self) -> None:
        """The PostgreSQL scratch database (the Redis shapes) and the SQLite file (the embedded shape)."""
        common.create_database(self.dbname)
        self.created = True
        for url in (self.env["DATABASE_URL"], self.sqlite_url):
            env = {**self.env, "DATABASE_URL": url}
            subprocess.run([PY, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
            subprocess.run(
                [PY, "manage.py", "createsuperuser", "--noinput", "--username", "agent", "--email", "agent@example.com"],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.tmp / 'serve.sqlite3'}"

    def start(self, shape: Shape) -> e2e.Stack:
        env = dict(self.env)
        self.on_sqlite = shape.layer is None
        if shape.layer:
            env.update(REDIS_URL=REDIS_URL, PARLEY_CHANNEL_LAYER=shape.layer)
        else:
            # The embedded shape as `make run` has it: SQLite and the in-memory layer.
            env.update(REDIS_URL="", DATABASE_URL=self.sqlite_url)
        logs = self.tmp / shape.key
        logs.mkdir(parents=True, exist_ok=True)
        urls = [f"http://127.0.0.1:{e2e.free_port()}" for _ in range(shape.web)]
        stack = e2e.Stack(urls, env, logs, agent_password=self.agent_password)
        self.stacks.append(stack)
        for i, url in enumerate(urls):
            port = url.rsplit(":", 1)[1]
            if shape.layer:
                e2e._start(stack, f"daphne-{i}", [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", port, "project.asgi:application"])
            else:
                e2e._start(stack, f"serve-{i}", [PY, "manage.py", "serve", "--port", port])
        if shape.split:
            e2e._start(stack, "workers", [PY, "manage.py", "runworkers", "--groups", "pipeline", "--no-jobs"])
            e2e._start(stack, "workers-rest", [PY, "manage.py", "runworkers", "--groups",
                                               "workflow,push,webhooks,email-fallback"])
        elif shape.layer:
            e2e._start(stack, "workers", [PY, "manage.py", "runworkers"])
        e2e._wait_healthy(stack)
        return stack

    def stop(self, stack: e2e.Stack) -> None:
        e2e.stop_stack(stack)
        if stack in self.stacks:
            self.stacks.remove(stack)
        # A worker killed before releasing its leases would make the next
        # shape's workers wait PARLEY_LEASE_SECONDS; nothing runs now.
        self.sql("UPDATE parley_checkpoints SET owner = '', lease_until = NULL")

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """A query on the database of the shape running now (PostgreSQL or SQLite)."""
        if self.on_sqlite:
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.sqlite_url.removeprefix("sqlite:///"), timeout=30)) as conn:
                cur = conn.execute(query.replace("%s", "?"), params or ())
                conn.commit()
                return cur.fetchall()
        import psycopg

        with psycopg.connect(**common.conninfo(self.dbname), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def head(self) -> tuple[int, int]:
        """The cursor (tx, position) of the last event in reading order."""
        rows = self.sql("SELECT tx, position FROM parley_events ORDER BY tx DESC, position DESC LIMIT 1")
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def wait_caught_up(self, timeout: float = 120) -> None:
        """Until every consumer's checkpoint has reached the end of the log."""
        deadline = time.monotonic() + timeout
        head, rows = (0, 0), []
        while time.monotonic() < deadline:
            head = self.head()
            rows = self.sql("SELECT name, tx, position FROM parley_checkpoints ORDER BY name")
            if rows and all((int(t), int(p)) >= head for _, t, p in rows):
                return
            time.sleep(0.25)
        raise RuntimeError(f"consumers did not catch up with the log (head {head}, checkpoints {rows})")

    def fanned_out(self, positions: list[int]) -> set[int]:
        """Which of these events the fan-out consumer has passed (sent to the layer)."""
        if not positions:
            return set()
        row = self.sql("SELECT tx, position FROM parley_checkpoints WHERE name = 'pipeline'")
        if not row:
            return set()
        tx, pos = int(row[0][0]), int(row[0][1])
        wanted = set(positions)
        events = self.sql("SELECT position, tx FROM parley_events WHERE position >= %s", [min(wanted)])
        return {int(p) for p, t in events if int(p) in wanted and (int(t), int(p)) <= (tx, pos)}

    def close(self) -> None:
        for stack in list(self.stacks):
            with contextlib.suppress(Exception):
                e2e.stop_stack(stack)
        self.stacks.clear()
        for p in self.procs:
            stop_process(p)
        self.procs.clear()
        if self.created:
            with contextlib.suppress(Exception):
                common.drop_database(self.dbname)
            self.created = False


def stop_process(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def register_customers(urls: list[str], key: str, n: int) -> list[dict[str, str]]:
    def one(i: int) -> dict[str, str]:
        body = {"name": f"Bench Customer {i}", "email": f"c{i}@example.com", "external_id": str(uuid.uuid4())}
        try:
            status, out = e2e.http("POST", f"{urls[i % len(urls)]}/api/v1/customers", body, token=key)
        except ValueError:  # not JSON: Django's error page
            status, out = 500, "an HTML error page (see the server log)"
        if status != 201:
            raise RuntimeError(f"registering customer {i} over HTTP answered {status}: {out}")
        return out

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


def agent_tokens(url: str, password: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        status, body = e2e.http("POST", f"{url}/api/v1/auth/agent", {"username": "agent", "password": password})
        if status != 201:
            raise RuntimeError(f"agent login: {status} {body}")
        out.append(str(body["token"]))
    return out


# -- the client ---------------------------------------------------------------------------



def ms(v: float) -> str:
    if v != v:
        return "–"
    return f"{v * 1000:.1f}" if v < 0.1 else f"{v * 1000:,.0f}"


def e2e_ws(url: str, token: str) -> str:
    return url.replace("http://", "ws://") + f"/ws/v1/?token={token}"


@dataclass(eq=False)
class Sock:
    kind: str  # "customer" | "agent" | "echo"
    index: int
    proc: int  # which server process it is connected to
    url: str
    customer_id: str = ""
    ws: Any = None
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    closing: bool = False  # the client is closing it
    closed_by_server: str = ""  # close code and reason when the server closed it


async def read_loop(sock: Sock, on_frame: Any) -> None:
    with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
        async for raw in sock.ws:
            on_frame(sock, raw, time.perf_counter())
    if not sock.closing and sock.ws is not None and sock.ws.close_code is not None:
        sock.closed_by_server = f"{sock.ws.close_code} {sock.ws.close_reason or ''}".strip()


async def connect_all(socks: list[Sock], on_frame: Any) -> tuple[float, list[str]]:
    """Connect, start a reader on each, then wait for a pong from each: the
    consumer handles frames in order, so a pong means its connect (joining
    its group) is done. Returns the seconds it took and the failures;
    sockets that failed are left with ``ws`` None."""
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures: list[str] = []

    async def one(s: Sock) -> None:
        async with sem:
            try:
                s.ws = await ws_connect(
                    s.url, ping_interval=None, compression=None, open_timeout=60, close_timeout=2, max_queue=None
                )
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
        s.reader = asyncio.create_task(read_loop(s, on_frame))
        try:
            await s.ws.send('{"type":"ping"}')
            await asyncio.wait_for(s.pong.wait(), 60)
        except Exception as exc:
            failures.append(f"no pong: {type(exc).__name__}: {exc}")
            s.reader.cancel()
            with contextlib.suppress(Exception):
                await s.ws.close()
            s.ws = None

    t0 = time.perf_counter()
    await asyncio.gather(*(one(s) for s in socks))
    return time.perf_counter() - t0, failures


async def close_all(socks: list[Sock]) -> None:
    sem = asyncio.Semaphore(200)

    async def one(s: Sock) -> None:
        s.closing = True
        async with sem:
            if s.reader:
                s.reader.cancel()
            if s.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(s.ws.close(), 5)

    await asyncio.gather(*(one(s) for s in socks))


async def open_and_close(urls: list[str], tokens: list[str], path: str = "") -> None:
    """A few sockets opened and closed on each process (lazy imports, first-use caches)."""
    socks = [
        Sock("warm", i, p, e2e_ws(u, tokens[i % len(tokens)]) if tokens else u + path)
        for p, u in enumerate(urls)
        for i in range(8)
    ]

    def on_frame(s: Sock, raw: str, now: float) -> None:
        if '"pong"' in raw or '"ping"' in raw:
            s.pong.set()

    await connect_all(socks, on_frame)
    await close_all(socks)


@dataclass(eq=False)
class Track:
    kind: str  # who sent it: "customer" | "agent"
    customer_id: str
    receiver: Sock
    phase: str | None  # the measured window it was sent in, if any
    t_send: float = 0.0
    t_ack: float | None = None
    position: int | None = None  # from the ack
    t_recv: float | None = None
    frames: int = 0  # message.sent frames of it seen on any socket
    seq: int = 0  # customer messages: the how-manieth (every REPLY_EVERY-th is answered)
    t_badge: float | None = None  # agent replies: the customer's badge frame of it


@dataclass
class Phase:
    name: str
    rate: float  # customer messages/s (agents answer each)
    seconds: float
    w0: float = 0.0
    w1: float = 0.0
    lag: float = 0.0  # how far the sender fell behind its schedule
    cpu: dict[str, float] = field(default_factory=dict)


class ChatLoad:
    """Customers and agents on real sockets; every message sent is tracked."""

    def __init__(self, customers: list[Sock], agents: list[Sock]) -> None:
        self.customers, self.agents = customers, agents
        self.tracks: dict[str, Track] = {}
        self.errors: list[dict[str, Any]] = []
        self.foreign = 0  # message.sent frames of messages this client never sent
        self.send_failures = 0  # sends on sockets the server had closed
        self.by_customer = {s.customer_id: s for s in customers}
        self.replying: set[asyncio.Future[Track]] = set()
        self.copies = len(agents) + 1  # every agent and the customer's one socket
        self.sequence = 0
        self.badge_due: dict[tuple[int, int], Track] = {}  # (customer socket, position) -> the reply

    def answerer(self, customer: Sock) -> Sock:
        """An agent on another process than the customer's, when there is one."""
        others = [a for a in self.agents if a.proc != customer.proc] or self.agents
        return others[customer.index % len(others)]

    def on_frame(self, sock: Sock, raw: str, now: float) -> None:
        f = json.loads(raw)
        kind = f.get("type")
        if kind == "message.sent":
            tr = self.tracks.get(f["message"]["message_id"])
            if tr is None:
                self.foreign += 1
                return
            tr.frames += 1
            if sock is tr.receiver and tr.t_recv is None:
                tr.t_recv = now
                if tr.kind == "agent":
                    self.badge_due[(id(sock), f["position"])] = tr
                elif tr.seq % REPLY_EVERY == 0:
                    task = asyncio.ensure_future(
                        self.send(sock, "agent", tr.customer_id, self.by_customer[tr.customer_id], tr.phase)
                    )
                    self.replying.add(task)
                    task.add_done_callback(self.replying.discard)
        elif kind == "badge":
            tr = self.badge_due.pop((id(sock), f.get("position")), None)
            if tr is not None:
                tr.t_badge = now
        elif kind == "ack":
            tr = self.tracks.get(f.get("ref", ""))
            if tr is not None and tr.t_ack is None:
                tr.t_ack, tr.position = now, f.get("position")
        elif kind == "pong":
            sock.pong.set()
        elif kind == "error":
            self.errors.append(f)

    async def send(self, sock: Sock, kind: str, customer_id: str, receiver: Sock, phase: str | None) -> Track:
        mid = str(uuid.uuid4())
        frame: dict[str, Any] = {"type": "message.send", "message_id": mid, "body": f"bench {kind} message {mid[:8]}"}
        if kind == "agent":
            frame["customer_id"] = customer_id
        tr = Track(kind, customer_id, receiver, phase)
        if kind == "customer":
            self.sequence += 1
            tr.seq = self.sequence
        data = json.dumps(frame)
        try:
            tr.t_send = time.perf_counter()
            await sock.ws.send(data)
        except websockets.ConnectionClosed:
            self.send_failures += 1  # the server closed this socket
            return tr
        self.tracks[mid] = tr
        return tr

    async def probe(self, timeout: float = 60) -> None:
        """One exchange through the whole pipeline before measuring."""
        c = self.customers[0]
        self.sequence = REPLY_EVERY - 1  # so that this one is answered
        tr = await self.send(c, "customer", c.customer_id, self.answerer(c), None)
        deadline = time.perf_counter() + timeout
        while tr.t_recv is None or not any(t.kind == "agent" and t.t_recv is not None for t in self.tracks.values()):
            if time.perf_counter() > deadline:
                raise RuntimeError("the probe message was not delivered")
            await asyncio.sleep(0.05)

    async def drive(self, phase: Phase, probe: Probe) -> None:
        order = list(self.customers)
        random.Random(len(self.tracks)).shuffle(order)
        start = time.perf_counter()
        phase.w0, phase.w1 = start + WARMUP, start + WARMUP + phase.seconds
        i, measuring = 0, False
        while True:
            target = start + i / phase.rate
            if target >= phase.w1:
                break
            if not measuring and target >= phase.w0:
                probe.start()
                measuring = True
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif measuring:
                phase.lag = max(phase.lag, -delay)
            c = order[i % len(order)]
            await self.send(c, "customer", c.customer_id, self.answerer(c), phase.name if measuring else None)
            i += 1
        await asyncio.sleep(max(0.0, phase.w1 - time.perf_counter()))
        phase.cpu = probe.stop()

    def done(self, phase: str) -> bool:
        mine = [t for t in self.tracks.values() if t.phase == phase]
        due = sum(1 for t in mine if t.kind == "customer" and t.t_recv is not None and t.seq % REPLY_EVERY == 0)
        replies = sum(1 for t in mine if t.kind == "agent")
        return replies == due and all(
            t.t_recv is not None and t.frames >= self.copies and (t.kind == "customer" or t.t_badge is not None) for t in mine
        )

    async def drain(self, phase: str, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and not self.done(phase):
            await asyncio.sleep(0.1)

    def results(self, phase: Phase, fanned_out: set[int]) -> dict[str, Any]:
        mine = [t for t in self.tracks.values() if t.phase == phase.name]
        lat = {k: [t.t_recv - t.t_send for t in mine if t.kind == k and t.t_recv is not None] for k in ("customer", "agent")}
        # Lost: the fan-out had sent it, yet it never arrived. Queued: still behind in the pipeline.
        passed = [t for t in mine if t.position is not None and t.position in fanned_out]
        if DEBUG:
            slowest = sorted((t for t in mine if t.t_recv is not None), key=lambda t: t.t_send - t.t_recv)[:8]
            for t in slowest:
                log(f"    slow {t.kind} {1000 * (t.t_recv - t.t_send):.1f} ms sent@{t.t_send - phase.w0:.2f}s "
                    f"to={t.receiver.kind}{t.receiver.index}@{t.receiver.proc} position={t.position}")
            for t in mine:
                if t.t_recv is None or t.frames < self.copies:
                    log(f"    missing {t.kind} cust={t.customer_id[:8]} to={t.receiver.kind}{t.receiver.index}@{t.receiver.proc} "
                        f"sent@{t.t_send - phase.w0:.2f}s position={t.position} fanned_out={t.position in fanned_out} frames={t.frames}")
        delivered = sum(1 for t in self.tracks.values() if t.t_recv is not None and phase.w0 <= t.t_recv < phase.w1)
        return {
            "phase": phase,
            "sent": len(mine),
            "sent_rate": len(mine) / phase.seconds,
            "customer_rate": sum(1 for t in mine if t.kind == "customer") / phase.seconds,
            "agent_rate": sum(1 for t in mine if t.kind == "agent") / phase.seconds,
            "delivered_rate": delivered / phase.seconds,
            "lat": lat["customer"] + lat["agent"],
            "lat_c2a": lat["customer"],
            "lat_a2c": lat["agent"],
            "lat_badge": [t.t_badge - t.t_send for t in mine if t.kind == "agent" and t.t_badge is not None],
            "acks": [t.t_ack - t.t_send for t in mine if t.t_ack is not None],
            "lost": sum(1 for t in passed if t.t_recv is None),
            "lost_frames": sum(max(0, self.copies - t.frames) for t in passed),
            "queued": sum(1 for t in mine if t.t_recv is None and t not in passed),
            "duplicate_frames": sum(max(0, t.frames - self.copies) for t in mine),
            "no_ack": sum(1 for t in mine if t.t_ack is None),
        }


# -- one server shape -------------------------------------------------------------------------


async def chat_shape(run: Run, shape: Shape, customers: list[dict[str, str]], tokens: list[str], stack: e2e.Stack) -> dict[str, Any]:
    daphnes = {i: p.pid for i, p in enumerate(stack.procs[: shape.web])}
    workers = [p.pid for p in stack.procs[shape.web:]]
    await open_and_close(stack.urls, [c["token"] for c in customers[:8]])
    await asyncio.sleep(1.0)
    before = {i: rss_kib(pid) for i, pid in daphnes.items()}

    csocks = [
        Sock("customer", i, i % shape.web, e2e_ws(stack.urls[i % shape.web], c["token"]), customer_id=c["customer_id"])
        for i, c in enumerate(customers)
    ]
    # Agents spread over the processes, so that each customer has one on the other.
    asocks = [Sock("agent", i, i % shape.web, e2e_ws(stack.urls[i % shape.web], t)) for i, t in enumerate(tokens)]
    load = ChatLoad(csocks, asocks)
    pids = {"daphne": list(daphnes.values()), "workers": workers}
    out: dict[str, Any] = {"shape": shape, "phases": []}
    try:
        _, agent_failures = await connect_all(asocks, load.on_frame)
        t_connect, failures = await connect_all(csocks, load.on_frame)
        failures += agent_failures
        if failures:
            log(f"  {len(failures)} sockets failed to connect, e.g. {failures[0]}")
        load.customers = [s for s in csocks if s.ws is not None]
        load.agents = [s for s in asocks if s.ws is not None]
        if not load.agents or not load.customers:
            raise RuntimeError(f"sockets failed to connect: {failures[0] if failures else '?'}")
        # Idle: after the connects have settled, and after a VACUUM ANALYZE,
        # so that autovacuum's own transactions (the registrations wrote
        # thousands of rows) do not count as the servers' idle cost.
        await asyncio.sleep(2.0)
        pg = None if run.on_sqlite else run  # PostgreSQL's counters: the Redis shapes only
        if pg is not None:
            await asyncio.to_thread(run.sql, "VACUUM ANALYZE")
            await asyncio.sleep(15.0)  # the VACUUM's own statistics and autovacuum's reaction settle
        idle_probe = Probe(pids, pg)
        idle_probe.start()
        await asyncio.sleep(IDLE_SECONDS)
        idle = {i: rss_kib(pid) for i, pid in daphnes.items()}
        held = Counter(s.proc for s in load.customers + load.agents)
        out.update(
            sockets=sum(held.values()), per_process=dict(held), connect_rate=len(load.customers) / t_connect,
            connect_failures=failures, rss_before=before, rss_idle=idle, idle=idle_probe.stop(),
            kib_per_conn=sum(idle[i] - before[i] for i in daphnes) / sum(held.values()),
        )
        log(
            f"  {len(load.customers)} customers connected in {t_connect:.1f}s; "
            + ", ".join(f"daphne {i}: {before[i] / 1024:.0f} -> {idle[i] / 1024:.0f} MiB with {held[i]} sockets" for i in daphnes)
            + (f"; idle: {out['idle']['pg_sessions']:.1f} PostgreSQL sessions/s, {out['idle']['pg_commits']:.2f} commits/s "
               f"({out['idle']['pg_commits'] / shape.processes:.2f} per process)"
               if "pg_commits" in out["idle"] else "; SQLite")
        )
        await load.probe()
        loaded = SERVE_RATE if shape.layer is None else RATE
        for phase in (Phase("light", LIGHT_RATE, LIGHT_SECONDS), Phase("loaded", loaded, SECONDS)):
            log(f"  {phase.name}: {phase.rate:g} customer messages/s, every {REPLY_EVERY}th answered; {WARMUP:g}s warm-up + {phase.seconds:g}s measured")
            await load.drive(phase, Probe(pids, pg))
            await load.drain(phase.name, DRAIN)
            fanned = await asyncio.to_thread(run.fanned_out, [t.position for t in load.tracks.values() if t.phase == phase.name and t.position])
            res = load.results(phase, fanned)
            out["phases"].append(res)
            c = phase.cpu
            log(
                f"    customer→agent p50 {ms(percentile(res['lat_c2a'], 0.5))} ms, p99 {ms(percentile(res['lat_c2a'], 0.99))} ms, "
                f"badge p50 {ms(percentile(res['lat_badge'], 0.5))} p99 {ms(percentile(res['lat_badge'], 0.99))} ms, ack p50 {ms(percentile(res['acks'], 0.5))} ms; "
                f"{res['delivered_rate']:.1f}/s delivered of {res['sent_rate']:.1f}/s; lost {res['lost']} (+{res['lost_frames']} copies), "
                f"queued {res['queued']}; CPU% daphne {c['daphne']:.0f} workers {c['workers']:.0f} postgres {c['postgres']:.0f} "
                f"client {c['client']:.0f} others {c['others']:.0f}; waiting for a core% daphne {c['wait_daphne']:.0f} "
                f"workers {c['wait_workers']:.0f}"
                + (f"; PostgreSQL {c['pg_sessions']:.0f} sessions/s, {c['pg_commits']:.0f} commits/s" if "pg_commits" in c else "")
            )
        out["rss_after"] = {i: rss_kib(pid) for i, pid in daphnes.items()}
    finally:
        await close_all(csocks + asocks)
    out.update(
        errors=load.errors, foreign=load.foreign, send_failures=load.send_failures,
        server_closed=Counter(s.closed_by_server for s in csocks + asocks if s.closed_by_server),
    )
    if shape.layer:
        await asyncio.sleep(2.0)
        out["redis_leftovers"] = await asyncio.to_thread(redis_leftovers, run.env["PARLEY_CHANNEL_PREFIX"])
    return out


def redis_leftovers(prefix: str) -> dict[str, int]:
    """What the channel layer still holds in Redis once every socket has closed:
    pub/sub subscriptions (pubsub layer) and group members (core layer)."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        channels = r.pubsub_channels(f"{prefix}*")
        members = sum(int(r.zcard(k)) for k in r.scan_iter(f"{prefix}:group:*", count=1000))
        if DEBUG:
            log(f"    still subscribed: {sorted(str(c) for c in channels)[:10]}")
        return {"subscriptions": len(channels), "group_members": members}
    finally:
        r.close()


# -- the echo baseline --------------------------------------------------------------------


async def echo_baseline(run: Run, n: int, rate: float, seconds: float) -> dict[str, Any]:
    port = e2e.free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    with open(run.tmp / "echo.log", "wb") as logf:
        p = subprocess.Popen(
            [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.echo_asgi:application"],
            cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )
    run.procs.append(p)
    deadline = time.monotonic() + 30
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"echo server exited: {(run.tmp / 'echo.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("echo server did not start")
        await asyncio.sleep(0.1)
    url = f"ws://127.0.0.1:{port}/"
    sent: dict[int, float] = {}
    got: dict[int, float] = {}

    def on_frame(sock: Sock, raw: str, now: float) -> None:
        if raw.startswith('{"type":"ping"'):
            sock.pong.set()
        else:
            got[int(raw)] = now

    await open_and_close([url], [])
    await asyncio.sleep(1.0)
    before = rss_kib(p.pid)
    socks = [Sock("echo", i, 0, url) for i in range(n)]
    phase = Phase("echo", rate, seconds)
    try:
        t_connect, failures = await connect_all(socks, on_frame)
        if failures:
            raise RuntimeError(f"{len(failures)} echo sockets failed: {failures[0]}")
        await asyncio.sleep(3.0)
        idle = rss_kib(p.pid)
        log(f"  {n} sockets connected in {t_connect:.1f}s; daphne {before / 1024:.0f} -> {idle / 1024:.0f} MiB")
        probe = Probe({"daphne": [p.pid], "workers": []})
        order = list(socks)
        random.Random(7).shuffle(order)
        start = time.perf_counter()
        phase.w0, phase.w1 = start + WARMUP, start + WARMUP + seconds
        i, measuring = 0, False
        while True:
            target = start + i / rate
            if target >= phase.w1:
                break
            if not measuring and target >= phase.w0:
                probe.start()
                measuring = True
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif measuring:
                phase.lag = max(phase.lag, -delay)
            if measuring:
                sent[i] = time.perf_counter()
            await order[i % n].ws.send(str(i))
            i += 1
        await asyncio.sleep(max(0.0, phase.w1 - time.perf_counter()))
        phase.cpu = probe.stop()
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline and any(k not in got for k in sent):
            await asyncio.sleep(0.05)
    finally:
        await close_all(socks)
        stop_process(p)
    lat = [got[k] - t for k, t in sent.items() if k in got]
    return {
        "phase": phase,
        "sent_rate": len(sent) / seconds,
        "delivered_rate": sum(1 for k in sent if k in got and phase.w0 <= got[k] < phase.w1) / seconds,
        "lat": lat,
        "lost": sum(1 for k in sent if k not in got),
        "sockets": n,
        "per_process": {0: n},
        "connect_rate": n / t_connect,
        "kib_per_conn": (idle - before) / n,
        "rss_before": {0: before},
        "rss_idle": {0: idle},
    }


# -- the report ------------------------------------------------------------------------------


def render(echo: dict[str, Any] | None, chats: list[dict[str, Any]], failures: list[tuple[Shape, str]],
           findings: dict[str, Counter[str]], elapsed: float) -> str:
    b99 = percentile(echo["lat"], 0.99) if echo else float("nan")

    def pair(values: list[float]) -> str:
        return f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.99))}"

    rows: list[list[object]] = []
    if echo:
        rows.append([
            "bare Channels echo (baseline), 1 Daphne", "echo", f"{echo['sent_rate']:.0f} frames", f"{echo['delivered_rate']:.0f}",
            f"**{ms(percentile(echo['lat'], 0.5))}**", f"**{ms(percentile(echo['lat'], 0.99))}**", "–", "–", "–", "1", f"{echo['lost']} / –",
        ])
    for r in chats:
        for ph in r["phases"]:
            c2a = ph["lat_c2a"]
            rows.append([
                f"**{r['shape'].label}**", ph["phase"].name, f"{ph['customer_rate']:.0f} + {ph['agent_rate']:.0f}",
                f"{ph['delivered_rate']:.0f}",
                f"**{ms(percentile(c2a, 0.5))}**", f"**{ms(percentile(c2a, 0.99))}**", f"**{pair(ph['lat_badge'])}**", pair(ph["lat_a2c"]),
                pair(ph["acks"]),
                f"{percentile(c2a, 0.99) / b99:,.1f}" if b99 == b99 and c2a else "–",
                f"{ph['lost']} (+{ph['lost_frames']} copies) / {ph['queued']}",
            ])
    for shape, why in failures:
        rows.append([f"**{shape.label}**", "failed", "–", "–", "–", "–", "–", "–", "–", "–", why[:160]])
    delivery = table(
        ["server", "phase", "sent/s: customers + agent", "delivered/s", "customer→agent p50 ms", "customer→agent p99 ms",
         "agent reply→customer's badge p50 / p99 ms", "agent reply→customer's message p50 / p99 ms",
         "send→ack p50 / p99 ms", "p99 / echo p99",
         "not delivered: pipeline had passed it (+ other copies) / not processed yet"],
        rows,
    )

    mem_rows: list[list[object]] = []
    for name, r in ([("bare Channels echo (baseline)", echo)] if echo else []) + [(c["shape"].label, c) for c in chats if "kib_per_conn" in c]:
        per = r["per_process"]
        rss = ", ".join(f"{r['rss_before'][i] / 1024:.0f} → {r['rss_idle'][i] / 1024:.0f}" for i in sorted(r["rss_before"]))
        idle = r.get("idle")
        mem_rows.append([
            name, " + ".join(str(per[i]) for i in sorted(per)), f"{r['connect_rate']:.0f}", rss, f"**{r['kib_per_conn']:.0f}**",
            f"{idle['pg_sessions']:.1f} / {idle['pg_commits']:.2f} ({idle['pg_commits'] / r['shape'].processes:.2f} per process)"
            if idle and "pg_commits" in idle and r.get("shape") else "– (SQLite)" if idle else "–",
            f"{idle['daphne']:.0f} / {idle['workers']:.0f}" if idle and r["shape"].layer else f"{idle['daphne']:.0f}" if idle else "–",
        ])
    memory = table(
        ["server", "sockets per Daphne", "connects/s", "Daphne RSS MiB before → with sockets", "KiB per idle connection",
         "idle: PostgreSQL sessions/s / transactions/s", "idle CPU %: Daphne / workers"],
        mem_rows,
    )

    cpu_rows: list[list[object]] = []
    phases: list[tuple[Shape | None, Phase, dict[str, Any] | None]] = ([(None, echo["phase"], None)] if echo else []) + [
        (c["shape"], ph["phase"], ph) for c in chats for ph in c["phases"]
    ]
    for shp, phase, ph in phases:
        c = phase.cpu
        name = shp.label if shp else "bare Channels echo (baseline)"
        workers = "–" if shp is None else f"{c['workers']:.0f}" if shp.layer else "(in Daphne)"
        cpu_rows.append([
            name, phase.name, f"{c['daphne']:.0f}", workers,
            f"{c['postgres']:.0f}", f"{c['redis']:.0f}", f"{c['client']:.0f}", f"{c['others']:.0f}",
            f"{c['wait_daphne']:.0f}" + (f" / {c['wait_workers']:.0f}" if shp is not None and shp.layer else ""),
            f"{c['pg_sessions']:.0f} / {c['pg_commits']:.0f}" if "pg_sessions" in c else "–",
            f"{c['pg_sessions'] / ph['sent_rate']:.2f} / **{c['pg_commits'] / ph['sent_rate']:.2f}**"
            if ph and ph["sent_rate"] and "pg_commits" in c else "–",
        ])
    cpu = table(
        ["server", "phase", "CPU % Daphne", "CPU % workers", "CPU % PostgreSQL (whole server)", "CPU % Redis",
         "CPU % client", "CPU % other processes", "waiting for a core %: Daphne / workers",
         "PostgreSQL sessions/s / transactions/s",
         "per message: sessions / transactions"],
        cpu_rows,
    )

    lags = ([echo["phase"].lag] if echo else []) + [ph["phase"].lag for c in chats for ph in c["phases"]]
    notes = [
        f"{CUSTOMERS:,} customer sockets and {AGENTS} agent socket(s) (one agent account) in one client process "
        "(one asyncio loop, `websockets`). Customers send `message.send` over their sockets at a steady rate (open loop, "
        f"round-robin); the agent answers every {REPLY_EVERY}th customer message over its socket as soon as it reaches it. "
        f"Phases: *light* {LIGHT_RATE:g} customer messages/s for {LIGHT_SECONDS:g} s; *loaded* {RATE:g}/s on Redis and "
        f"{SERVE_RATE:g}/s for the embedded `serve`, for {SECONDS:g} s; each after {WARMUP:g} s of warm-up. "
        "*customer→agent*: from just before the client writes `message.send` to the agent's `message.sent` frame of that "
        "message: the command and its commit, the pipeline's batch (read models, process managers, frames) and its commit, "
        "the publication, the dispatcher, Daphne. *agent reply→customer's badge*: from the agent's `message.send` to the "
        "customer's `badge` frame of that reply. `send→ack` is the command alone. *delivered/s* counts receptions inside "
        f"the window. *Not delivered* is counted {DRAIN:g} s after the phase ended: messages the pipeline had passed that "
        "never arrived, then their other copies, then messages not processed yet (backlog).",
        "With two Daphne processes customers alternate between them and the agent is on the second, so half the deliveries "
        "cross processes through Redis. The pipeline (read models, push process manager, fan-out) runs inside `serve` in (a) "
        "and in `runworkers` in (b) and (c). *Idle* is measured over 20 s with every socket connected, 15 s after a `VACUUM "
        "ANALYZE` (so autovacuum's own transactions are not counted), and divided over the processes.",
        "RSS: VmRSS of each Daphne process (in (a) the `serve` process, workers included) with every socket connected "
        "and idle, minus before they connected (after 8 sockets per process had been opened and closed), over the sockets "
        f"it holds. The echo baseline: same client, {CUSTOMERS:,} sockets, {ECHO_RATE:g} frames/s (the loaded phase's "
        "total on Redis) from random sockets, round trip per frame.",
        f"Servers run with production settings: `PARLEY_DEBUG=0`, `PARLEY_POLL_INTERVAL="
        f"{os.environ.get('PARLEY_POLL_INTERVAL', '1.0')}`, "
        + "".join(f"`{k}={os.environ[k]}` (from the environment), " for k in sorted(os.environ)
                  if k.startswith("PARLEY_") and k not in ("PARLEY_DEBUG", "PARLEY_POLL_INTERVAL", "PARLEY_BENCH_BASE_URL"))
        + f"settings module `{SETTINGS}`. CPU is % of one core "
        f"({NCPU} cores in all) over each measured window; *other processes* is the rest of the machine's busy time. *Waiting for a core* "
        "is the time the processes' threads were runnable but not running (the kernel's run-queue delay, "
        "/proc/<pid>/task/*/schedstat), in % of one core's time like the CPU: near 0 while a core is spare; as it "
        "nears the CPU figure, messages wait for the machine, not for the code. "
        f"PostgreSQL sessions (connections opened) and transactions (`xact_commit`) are those of the scratch database only. The client fell behind its schedule "
        f"by at most {max(lags, default=0) * 1000:.0f} ms and used at most "
        f"{max([p.cpu.get('client', 0) for _, p, _ in phases], default=0):.0f}% of a core: it was not the bottleneck.",
    ]
    for r in chats:
        extra = []
        if r.get("connect_failures"):
            extra.append(f"{len(r['connect_failures'])} sockets failed to connect (`{r['connect_failures'][0][:120]}`)")
        if r["errors"]:
            codes = Counter(e.get("code") for e in r["errors"])
            extra.append("error frames: " + ", ".join(f"{c} ×{n}" for c, n in codes.items()))
        if r["foreign"]:
            extra.append(
                f"{r['foreign']} `message.sent` frames of messages this run never sent reached its agents: another "
                "deployment publishes on the same Redis (pub/sub channels ignore the database number)"
            )
        dups = sum(ph["duplicate_frames"] for ph in r["phases"])
        if dups:
            extra.append(f"{dups} duplicate frames")
        noack = sum(ph["no_ack"] for ph in r["phases"])
        if noack:
            extra.append(f"{noack} sends without an ack")
        if r.get("server_closed"):
            extra.append("sockets closed by the server: " + ", ".join(f"{n} with `{code}`" for code, n in r["server_closed"].items()))
        if r.get("send_failures"):
            extra.append(f"{r['send_failures']} sends failed on sockets the server had closed")
        if r.get("redis_leftovers"):
            left = r["redis_leftovers"]
            extra.append(
                f"once every socket had closed, Redis still held {left['subscriptions']} pub/sub subscriptions and "
                f"{left['group_members']} group members of this run"
            )
        logged = findings.get(r["shape"].key)
        if logged:
            extra.append("server logs: " + "; ".join(f"{n}× `{line[:160]}`" for line, n in logged.most_common(4)))
        if "rss_after" in r:
            extra.append("Daphne RSS after the load: " + ", ".join(f"{v / 1024:.0f}" for _, v in sorted(r["rss_after"].items())) + " MiB")
        notes.append(f"{r['shape'].label}: " + "; ".join(extra) + ".")
    for shape, why in failures:
        logged = findings.get(shape.key)
        notes.append(
            f"{shape.label} failed: {why}"
            + ("; server logs: " + "; ".join(f"{n}× `{line[:160]}`" for line, n in logged.most_common(4)) if logged else "")
        )
    notes.append(f"The whole script took {elapsed:.0f} s.")
    return "\n\n".join([delivery, memory, cpu, "\n".join(f"- {n}" for n in reading(echo, chats) + notes)])


def reading(echo: dict[str, Any] | None, chats: list[dict[str, Any]]) -> list[str]:
    """What the tables say against the targets, computed from them."""
    out = []
    b99 = percentile(echo["lat"], 0.99) if echo else float("nan")
    for r in chats:
        phases = {ph["phase"].name: ph for ph in r["phases"]}
        parts = []
        loaded = phases.get("loaded")
        if loaded:
            c2a, badge = loaded["lat_c2a"], loaded["lat_badge"]
            offered = loaded["customer_rate"] + loaded["agent_rate"]
            missing = loaded["lost"] + loaded["queued"]
            total = sum(1 for _ in c2a) + sum(1 for _ in loaded["lat_a2c"])
            parts.append(
                f"at {loaded['phase'].rate:g} customer messages/s ({offered:.0f} written/s): "
                f"{'every message delivered' if not missing else f'{missing} of {total + missing} not delivered'}; "
                f"customer→agent p50 {ms(percentile(c2a, 0.5))} ms, p99 {ms(percentile(c2a, 0.99))} ms"
                + (f" ({percentile(c2a, 0.99) / b99:,.1f}× the bare echo's p99)" if b99 == b99 and c2a else "")
                + f"; the customer's badge after a reply p50 {ms(percentile(badge, 0.5))} ms, p99 {ms(percentile(badge, 0.99))} ms"
            )
            c = loaded["phase"].cpu
            if loaded["sent_rate"] and "pg_commits" in c:
                parts.append(f"{c['pg_commits'] / loaded['sent_rate']:.2f} PostgreSQL transactions and "
                             f"{c['pg_sessions'] / loaded['sent_rate']:.2f} new connections per message written")
        idle = r.get("idle")
        if idle and "pg_commits" in idle:
            procs = r["shape"].processes
            parts.append(f"idle: {idle['pg_commits'] / procs:.2f} transactions/s per process")
        if "kib_per_conn" in r and echo:
            parts.append(f"{r['kib_per_conn']:.0f} KiB per idle socket against {echo['kib_per_conn']:.0f} for the bare echo")
        out.append(f"**{r['shape'].label}**: " + "; ".join(parts) + ".")
    return out


# -- main -----------------------------------------------------------------------------------------


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * (CUSTOMERS + AGENTS) + 1024  # the servers inherit it
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


async def main_async(run: Run) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[tuple[Shape, str]], dict[str, Counter[str]]]:
    echo = None
    if "echo" in SHAPES:
        log(f"bare Channels echo: {CUSTOMERS} sockets, {ECHO_RATE:g} frames/s")
        echo = await echo_baseline(run, CUSTOMERS, ECHO_RATE, min(SECONDS, 20.0))
        log(f"  round trip p50 {ms(percentile(echo['lat'], 0.5))} ms, p99 {ms(percentile(echo['lat'], 0.99))} ms; {echo['kib_per_conn']:.0f} KiB per connection")
    shapes = [SHAPE_DEFS[s] for s in SHAPES if s in SHAPE_DEFS and (SHAPE_DEFS[s].layer is None or REDIS_URL)]
    chats: list[dict[str, Any]] = []
    failures: list[tuple[Shape, str]] = []
    findings: dict[str, Counter[str]] = {}
    if not shapes:
        return echo, chats, failures, findings
    log("scratch database: create, migrate, agent account")
    await asyncio.to_thread(run.setup)
    registered: dict[bool, tuple[list[dict[str, str]], list[str]]] = {}  # per database: customers, agent tokens
    for shape in shapes:
        log(shape.label)
        stack = None
        try:
            stack = await asyncio.to_thread(run.start, shape)
            if run.on_sqlite not in registered:
                t0 = time.perf_counter()
                found = await asyncio.to_thread(register_customers, stack.urls, run.env["PARLEY_INTEGRATION_KEY"], CUSTOMERS)
                registered[run.on_sqlite] = (found, await asyncio.to_thread(agent_tokens, stack.url, run.agent_password, AGENTS))
                log(f"  registered {len(found)} customers over HTTP in {time.perf_counter() - t0:.1f}s")
            customers, tokens = registered[run.on_sqlite]
            await asyncio.to_thread(run.wait_caught_up)
            chats.append(await chat_shape(run, shape, customers, tokens, stack))
        except Exception as exc:
            traceback.print_exc()
            failures.append((shape, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        finally:
            if stack is not None:
                await asyncio.to_thread(run.stop, stack)
                findings[shape.key] = log_findings(stack.logs)
                for line, n in findings[shape.key].most_common(6):
                    log(f"  server log: {n}× {line}")
    return echo, chats, failures, findings


def main() -> int:
    started = time.perf_counter()
    raise_open_files()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    common.base_url()  # PostgreSQL, or stop here
    if not REDIS_URL:
        log("REDIS_URL is not set: only the `serve` shape and the echo baseline run")
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-realtime-"))
    run = Run(tmp)
    try:
        echo, chats, failures, findings = asyncio.run(main_async(run))
    finally:
        run.close()
        if os.environ.get("BENCH_RT_KEEP_LOGS"):
            log(f"server logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    body = render(echo, chats, failures, findings, time.perf_counter() - started)
    if os.environ.get("BENCH_RT_DRY"):
        print(body)  # a trial: docs/benchmarks.md is left alone
    else:
        write_section(KEY, "Real-time delivery over websockets (bench/realtime.py)", body)
    return 1 if failures and not chats else 0


if __name__ == "__main__":
    sys.exit(main())
