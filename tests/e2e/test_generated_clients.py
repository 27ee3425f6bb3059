"""Clients generated from the served OpenAPI document work against a live server.

openapi-python-client and openapi-typescript (+ openapi-fetch, compiled with
``tsc --strict``) generate from ``GET /api/v1/openapi.json`` without a warning,
and a host application's first steps written with each (tests/e2e/clients/smoke.*:
register a customer, send, list conversations, claim, reply, read the badge)
run against the embedded server. The generators live in .tools/ (`make
client-tools`, which `make test` runs before the PostgreSQL pass).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack

pytestmark = pytest.mark.e2e

TOOLS = ROOT / ".tools"
CLIENTS = Path(__file__).resolve().parent / "clients"
PYTHON_CONFIG = ROOT / "docs" / "clients" / "openapi-python-client.yaml"


def _tool(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make client-tools` (make test does)")
    return path


@pytest.fixture(scope="module")
def served_document(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with urllib.request.urlopen(f"{stack.url}/api/v1/openapi.json", timeout=10) as r:
        raw = r.read()
    path = tmp_path_factory.mktemp("document") / "openapi.json"
    path.write_bytes(raw)
    return path


def _run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _script_env(stack: Stack, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        "BASE": stack.url, "KEY": stack.env["PARLEY_INTEGRATION_KEY"],
        "AGENT_USER": stack.agent_username, "AGENT_PASSWORD": stack.agent_password, **extra,
    }


def _check_first_steps(seen: dict[str, Any], name: str) -> None:
    assert seen["listed"] == [{"customer_name": name, "status": "open", "last_message": seen["listed"][0]["last_message"]}]
    assert seen["listed"][0]["last_message"]
    assert seen["claimed_by"] and seen["badge"] == 1 and seen["refused"] == "forbidden"


def test_the_python_client_generates_without_warnings_and_works(stack, served_document, tmp_path):
    bin_dir = _tool(TOOLS / "python" / "bin")
    generate = _run([bin_dir / "openapi-python-client", "generate", "--path", served_document, "--meta", "none",
                     "--config", PYTHON_CONFIG, "--output-path", tmp_path / "parley_client"], cwd=tmp_path,
                    env={**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"})
    output = generate.stdout + generate.stderr
    assert "warning" not in output.lower() and "error" not in output.lower(), output

    models = {p.stem for p in (tmp_path / "parley_client" / "models").glob("*.py")}
    assert {"error", "conversation", "conversation_page", "conversation_written", "message_created_event"} <= models
    done = _run([bin_dir / "python", CLIENTS / "smoke.py"], cwd=tmp_path, env=_script_env(stack, PYTHONPATH=str(tmp_path)))
    seen = json.loads(done.stdout)
    _check_first_steps(seen, "Ada Lovelace")
    assert seen["claimed_again"] == "ConversationWritten"


def test_the_typescript_client_generates_compiles_strictly_and_works(stack, served_document, tmp_path):
    node_modules = _tool(TOOLS / "node" / "node_modules")
    for name in ("smoke.ts", "tsconfig.json", "package.json"):
        shutil.copy(CLIENTS / name, tmp_path / name)
    (tmp_path / "node_modules").symlink_to(node_modules)
    generate = _run([node_modules / ".bin" / "openapi-typescript", served_document, "-o", tmp_path / "schema.d.ts"],
                    cwd=tmp_path)
    assert "warn" not in (generate.stdout + generate.stderr).lower(), generate.stdout + generate.stderr
    types = (tmp_path / "schema.d.ts").read_text()
    assert "export interface webhooks" in types and '"message.created"' in types  # receivers get types too
    _run([node_modules / ".bin" / "tsc", "-p", "tsconfig.json"], cwd=tmp_path)

    done = _run(["node", tmp_path / "out" / "smoke.js"], cwd=tmp_path, env=_script_env(stack))
    _check_first_steps(json.loads(done.stdout), "Grace Hopper")
