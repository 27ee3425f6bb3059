"""Every shell block in docs/ runs as pasted against a server shaped like `make run`.

A block is a fenced ``sh``/``bash``/``shell`` block. Each document's blocks run
in order in one bash (``set -eu -o pipefail``), from a folder holding a `.env`
as `make run` writes it, after the preamble of docs/api.md ("Trying it with
curl": ``BASE``, ``KEY``, ``PASSWORD``, ``json``). A block that cannot run
there (it needs root on a fresh host, a production database, a second
terminal) says so in the line above it: ``<!-- not run: <why> -->``.

Each block must exit 0, no answer may be a 5xx, and every error code an
answer carries must be one the block itself shows (so an example that
answers an error it does not mention, such as a placeholder id, fails).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack, _start, _wait_healthy, free_port, stop_stack

pytestmark = pytest.mark.e2e

DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>.*?)\s*-->")
SHELLS = {"sh", "bash", "shell"}
MAKE_RUN_URL = "http://127.0.0.1:8000"
# The local receiver docs/webhooks-outbound.md registers (after adding it to .env, as it says).
WEBHOOK_INSECURE_HOSTS = "127.0.0.1:9000"


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    text: str
    not_run: str | None  # why, when the block says it cannot run


def blocks(path: Path) -> list[Block]:
    source = path.read_text()
    found = []
    for m in FENCE.finditer(source):
        if m["lang"] not in SHELLS:
            continue
        before = source[: m.start()].rstrip().rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        found.append(Block(path.name, source.count("\n", 0, m.start()) + 1, textwrap.dedent(m["body"]),
                           marker["why"] if marker else None))
    return found


def preamble() -> Block:
    return blocks(DOCS / "api.md")[0]


def test_the_preamble_sets_what_the_examples_use():
    text = preamble().text
    for name in ("BASE=", "KEY=", "PASSWORD=", "json()"):
        assert name in text


def test_every_block_that_does_not_run_says_why():
    for path in sorted(DOCS.glob("*.md")):
        for block in blocks(path):
            if block.not_run is not None:
                assert len(block.not_run) > 10, f"{block.doc}:{block.line}: say why the block cannot run"


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`make run`'s shape: a fresh `.env` from scripts/make_env.py, the debug mode, the
    in-memory channel layer, migrate, ensure_demo_agent, then `manage.py serve`."""
    tmp = tmp_path_factory.mktemp("make-run")
    work = tmp / "checkout"
    work.mkdir()
    made = subprocess.run([sys.executable, "scripts/make_env.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    (work / ".env").write_text(made.stdout)
    dotenv = dict(line.split("=", 1) for line in made.stdout.splitlines() if "=" in line and not line.startswith("#"))
    db_url = f"sqlite:///{tmp / 'parley.sqlite3'}"  # make run's embedded default, whatever DATABASE_URL says
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "REDIS_URL"}
    env.update({k: v.strip('"') for k, v in dotenv.items()})
    env.update(DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="project.settings", PARLEY_DEBUG="1",
               PARLEY_MEDIA_ROOT=str(tmp / "media"), WEBHOOK_INSECURE_HOSTS=WEBHOOK_INSECURE_HOSTS)
    for command in (["migrate", "--noinput"], ["ensure_demo_agent"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    url = f"http://127.0.0.1:{free_port()}"
    logs = tmp / "logs"
    logs.mkdir()
    stack = Stack([url], env, logs)
    _start(stack, "serve", [sys.executable, "manage.py", "serve", "--bind", "127.0.0.1", "--port", url.rsplit(":", 1)[1]])
    try:
        _wait_healthy(stack)
        yield url, work
    finally:
        stop_stack(stack)


def _script(runnable: list[Block], url: str) -> str:
    parts = ["set -eu -o pipefail"]
    for i, block in enumerate(runnable):
        parts.append(f"printf '\\n@@block {i}@@\\n'")
        parts.append(block.text.replace(MAKE_RUN_URL, url))
    parts.append("printf '\\n@@done@@\\n'")
    return "\n".join(parts) + "\n"


# The documents with a block to run (the others' blocks each say why they cannot).
DOCUMENTS = sorted(p.name for p in DOCS.glob("*.md") if any(b.not_run is None for b in blocks(p)))


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_the_shell_blocks_of_each_document_run_as_pasted(doc, make_run):
    url, work = make_run
    own = [b for b in blocks(DOCS / doc) if b.not_run is None]
    runnable = own if doc == "api.md" else [preamble(), *own]
    done = subprocess.run(["bash", "-c", _script(runnable, url)], cwd=work, capture_output=True, text=True, timeout=300,
                          env={"PATH": os.environ["PATH"], "HOME": str(work), "LANG": "C.UTF-8"})
    output = done.stdout + done.stderr
    segments = re.split(r"\n@@block (\d+)@@\n", "\n" + done.stdout)
    by_block = {int(segments[i]): segments[i + 1] for i in range(1, len(segments) - 1, 2)}
    if done.returncode != 0 or "@@done@@" not in done.stdout:
        last = runnable[max(by_block, default=0)]
        pytest.fail(f"{last.doc}:{last.line} failed (exit {done.returncode}):\n{last.text}\n--- output\n{output[-3000:]}")
    for i, block in enumerate(runnable):
        answer = by_block.get(i, "")
        assert not re.search(r"^HTTP/[\d.]+ 5\d\d", answer, re.M), f"{block.doc}:{block.line}: a 5xx\n{answer}"
        for code in re.findall(r'"code":\s*"([a-z_]+)"', answer):
            assert code in block.text, f"{block.doc}:{block.line} answered {code!r}, which it does not show:\n{answer}"


def test_the_deployment_checks_show_what_they_claim(stack):
    """docs/deploy.md's header checks, against a production-shaped server (plain http
    on loopback, so without Strict-Transport-Security, which only https answers carry)."""
    (check,) = [b for b in blocks(DOCS / "deploy.md") if b.text.startswith("SITE=")]
    script = "set -eu -o pipefail\n" + check.text.replace("https://support.example.com", stack.url)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in done.stdout.splitlines()}
    assert "default-src" in lines["content-security-policy"]
    assert "unsafe-inline" not in lines["content-security-policy"]
    assert lines["cache-control"] == "max-age=315360000, public, immutable"
