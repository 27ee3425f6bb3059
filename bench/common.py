"""Shared set-up for the PostgreSQL benchmarks.

Every benchmark works in a scratch database of its own (created here, then
migrated with Django's ``migrate``, dropped at the end), so it never touches
the database named by DATABASE_URL beyond creating and dropping that
scratch database. Parts that need several processes use ``run_workers``:
``spawn`` children that each set Django up against the same scratch
database, get ready (connect, warm up), meet the parent at a barrier, then
work for a fixed duration; the rate is the total count over the longest
child's elapsed time.

Children are given a "module:function" target, so their code is imported
under its real module name (``bench.commands``), not ``__mp_main__``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"
#: Seconds each measured cell runs; BENCH_SECONDS overrides (e.g. 2 for a smoke run).
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
#: Rounds of every benchmark's cells (alternating order); figures are the mean.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
#: Seconds of work each child does after set-up, before the barrier.
WARMUP = float(os.environ.get("BENCH_WARMUP", "0.5"))

# Production runs with DEBUG off. With DEBUG on, Django keeps every query in
# connection.queries, which costs time in tight loops and is not what a
# deployment measures.
os.environ.setdefault("PARLEY_DEBUG", "0")
# Plain http on loopback: no https redirect, no secure-only cookies.
os.environ.setdefault("PARLEY_HTTPS", "0")
# Benchmarks send far faster than a person: no per-sender budget in the way.
os.environ.setdefault("PARLEY_CUSTOMER_SENDS_PER_MINUTE", "1000000000")
os.environ.setdefault("PARLEY_AGENT_SENDS_PER_MINUTE", "1000000000")
for _budget in ("CUSTOMER_EDITS", "AGENT_EDITS", "CUSTOMER_SEARCHES", "AGENT_SEARCHES"):
    os.environ.setdefault(f"PARLEY_{_budget}_PER_MINUTE", "1000000000")
# Many sockets of one agent (one identity) per process: no cap in the way.
os.environ.setdefault("PARLEY_SOCKETS_PER_IDENTITY", "1000000")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-not-used-for-anything-real-0123456789")
# A master key for the scratch databases' customer keys (eventstore.keys); bench-only, like the secret key.
os.environ.setdefault("PARLEY_KEYS", "bench:" + "QmVuY2gtb25seS1tYXN0ZXIta2V5LW5vdC1yZWFsLSE")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


# The server's own database (for CREATE/DROP DATABASE), remembered before
# setup_django() repoints DATABASE_URL at a scratch database; children
# inherit it through the environment.
os.environ.setdefault("PARLEY_BENCH_BASE_URL", os.environ.get("DATABASE_URL") or DEFAULT_URL)


def base_url() -> str:
    url = os.environ["PARLEY_BENCH_BASE_URL"]
    if not url.startswith("postgres"):
        raise SystemExit(f"benchmarks need PostgreSQL; DATABASE_URL is {url!r}")
    return url


def url_for(dbname: str, url: str | None = None) -> str:
    parsed = urlparse(url or base_url())
    return urlunparse(parsed._replace(path="/" + dbname))


def conninfo(dbname: str | None = None) -> dict[str, Any]:
    """psycopg connect() keyword arguments for ``dbname`` (default: DATABASE_URL's)."""
    parsed = urlparse(base_url())
    info: dict[str, Any] = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "dbname": dbname or parsed.path.lstrip("/") or "postgres",
    }
    if parsed.password:
        info["password"] = parsed.password
    return info


def scratch_name(key: str) -> str:
    """A scratch database name private to this run of benchmark ``key``."""
    return f"parley_bench_{key}_{os.getpid()}"


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(**conninfo(), autocommit=True) as conn:
        conn.execute(sql)


def create_database(dbname: str) -> None:
    _admin_execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{dbname}"')


def drop_database(dbname: str) -> None:
    _admin_execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def setup_django(dbname: str) -> None:
    """Point Django at ``dbname`` (must be called before anything imports models)."""
    os.environ["DATABASE_URL"] = url_for(dbname)
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


@contextlib.contextmanager
def scratch_database(key: str) -> Iterator[str]:
    """Create, migrate, yield and finally drop a scratch database; Django points at it."""
    dbname = scratch_name(key)
    # run_all.py stops an overrunning script with SIGTERM: unwind, so the
    # scratch database is still dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    create_database(dbname)
    try:
        setup_django(dbname)
        migrate()
        yield dbname
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        drop_database(dbname)


# -- several processes -------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    processes: int
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _child(target: str, dbname: str, index: int, args: tuple, barrier: Any, seconds: float, out: Any) -> None:
    try:
        setup_django(dbname)
        # target(index, *args) returns a callable doing one operation per call.
        op = _resolve(target)(index, *args)
        warm_until = time.monotonic() + WARMUP
        while time.monotonic() < warm_until:
            op()
        barrier.wait(timeout=120)
        start = time.monotonic()
        deadline = start + seconds
        count = 0
        now = start
        while now < deadline:
            op()
            count += 1
            now = time.monotonic()
        out.put((index, count, now - start, None))
    except BaseException as exc:  # report, do not hang the parent on the barrier
        with contextlib.suppress(Exception):
            barrier.abort()
        out.put((index, 0, 0.0, f"{type(exc).__name__}: {exc}"))


def run_workers(target: str, processes: int, dbname: str, args: tuple = (), seconds: float | None = None) -> Result:
    """Run ``target`` in ``processes`` spawned children for ``seconds`` after a common start.

    ``target`` is "module:function"; the function is called in each child as
    ``function(index, *args)`` after Django is set up and returns the
    zero-argument operation to repeat.
    """
    seconds = SECONDS if seconds is None else seconds
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    out = ctx.Queue()
    children = [
        ctx.Process(target=_child, args=(target, dbname, i, args, barrier, seconds, out), daemon=True)
        for i in range(processes)
    ]
    for p in children:
        p.start()
    try:
        barrier.wait(timeout=180)
    except Exception:
        pass  # a child failed; its error is on the queue
    results = [out.get(timeout=seconds + 300) for _ in children]
    for p in children:
        p.join(timeout=30)
    errors = [err for _, _, _, err in results if err]
    if errors:
        raise RuntimeError(f"{target} failed in a child: {errors[0]}")
    return Result(processes, sum(c for _, c, _, _ in results), max(s for _, _, s, _ in results))


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}"


def mean_rate(results: list[Result]) -> float:
    return sum(r.rate for r in results) / len(results) if results else 0.0


def fmt_rates(results: list[Result]) -> str:
    """The mean rate, with the spread of the rounds when there were several."""
    mean = mean_rate(results)
    if len(results) < 2:
        return fmt_rate(mean)
    lo, hi = min(r.rate for r in results), max(r.rate for r in results)
    return f"{fmt_rate(mean)} ({fmt_rate(lo)}–{fmt_rate(hi)})"


def loadavg() -> str:
    """The 1-minute load average now (other work on the machine skews figures)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "?"


CLK = os.sysconf("SC_CLK_TCK")


def proc_stat(path: Path) -> list[str]:
    """The fields of a /proc/<pid>/stat file after the command's name."""
    return path.read_text().rsplit(")", 1)[1].split()


def cpu_of(comm: str) -> float:
    """CPU seconds of every process named ``comm``, reaped children included.

    PostgreSQL forks a backend per connection; one that exits between two
    samples is still counted, through the postmaster's cutime/cstime.
    """
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() != comm:
                continue
            f = proc_stat(d / "stat")
        except OSError:
            continue
        total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / CLK
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / CLK, sum(parts) / CLK


def load_note(before: str) -> str:
    return (
        f"Load average (1 min) {before} at the start, {loadavg()} at the end, on "
        f"{os.cpu_count()} cores (the benchmark itself keeps one or two busy; more "
        "means other work shared the machine and the figures are noisier).\n"
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` a fraction (0.99 for p99); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * q) - 1))]


def log(msg: str) -> None:
    print(msg, flush=True)
