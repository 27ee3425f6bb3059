"""Run every benchmark under bench/ (what `make bench` runs).

A benchmark is a ``bench/*.py`` script with an ``if __name__ == "__main__":``
guard, other than this runner and the shared helpers. Each runs in its own
subprocess, with this process's environment, one after the other (they
measure the same machine, so they must not overlap). A failing or hanging
script does not stop the others; the exit status is non-zero if any failed.

    .venv/bin/python bench/run_all.py              # all of them
    .venv/bin/python bench/run_all.py append replay  # only these

BENCH_TIMEOUT (seconds, default 900) bounds each script.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HELPERS = {"__init__", "common", "report", "run_all", "push_peer", "echo_asgi", "bare_write_asgi"}
#: Run first, in this order; any other benchmark follows alphabetically.
FIRST = ["append", "commands", "replay"]
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "900"))


def discover() -> list[Path]:
    found = []
    for path in BENCH.glob("*.py"):
        if path.stem in HELPERS or path.stem.startswith("_"):
            continue
        try:
            text = path.read_text()
        except OSError:
            continue
        if 'if __name__ == "__main__"' in text or "if __name__ == '__main__'" in text:
            found.append(path)
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(found, key=lambda p: (rank.get(p.stem, len(FIRST)), p.stem))


def run(script: Path) -> tuple[int, float]:
    start = time.monotonic()
    # A session of its own, so a timeout can stop the script and its children.
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=os.environ.copy(), start_new_session=True)
    try:
        code = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"!! {script.name} exceeded {TIMEOUT:.0f}s; stopping it", flush=True)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        code = 124
    except KeyboardInterrupt:
        # The script has a session of its own, so Ctrl-C did not reach it.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    return code, time.monotonic() - start


def main(argv: list[str]) -> int:
    scripts = discover()
    if argv:
        wanted = {a.removesuffix(".py").removeprefix("bench/") for a in argv}
        unknown = wanted - {s.stem for s in scripts}
        if unknown:
            print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.stem in wanted]
    if not scripts:
        print("no benchmarks found under bench/", file=sys.stderr)
        return 1
    url = os.environ.get("DATABASE_URL", "")
    print(f"benchmarks: {', '.join(s.name for s in scripts)} (DATABASE_URL={url or 'unset'})", flush=True)
    results: list[tuple[str, int, float]] = []
    total_start = time.monotonic()
    for i, script in enumerate(scripts, 1):
        print(f"\n=== [{i}/{len(scripts)}] bench/{script.name} ===", flush=True)
        code, secs = run(script)
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"=== bench/{script.name}: {status} in {secs:.0f}s ===", flush=True)
        results.append((script.name, code, secs))
    print(f"\nsummary ({time.monotonic() - total_start:.0f}s in all):")
    for name, code, secs in results:
        print(f"  {name:20s} {'ok' if code == 0 else f'FAILED (exit {code})':18s} {secs:6.0f}s")
    failed = [name for name, code, _ in results if code != 0]
    if failed:
        print(f"failed: {', '.join(failed)}; see their output above", file=sys.stderr)
        return 1
    print("results written to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
