"""Schemathesis against the live /api/v1/openapi.json of a real server.

Every operation is fuzzed (schemathesis' coverage, fuzzing and stateful
phases) as a customer, as an agent and as the host application: no answer
may be a 5xx, and every answer with a documented status must match its
documented schema. Afterwards the server must still be healthy with nothing
in its logs that a request broke (a projection that cannot store fuzzed
data would show only there).

Run as the CLI (``st run``), the way a developer reproduces a failure: it
prints the seed. This module is also the CLI's hooks (SCHEMATHESIS_HOOKS
names it): the part that runs only when it is imported as those signs
webhook deliveries, and puts ids that exist in place of generated UUIDs in
paths, so that fuzzing reaches conversations and messages and not only 404s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack, http, start_stack, stop_stack

pytestmark = pytest.mark.e2e

ST = str(Path(sys.executable).with_name("st"))
WEBHOOK_PATH = "/webhooks/v1/inbound/{source}"
WEBHOOK_SOURCE, WEBHOOK_SECRET = "fuzz", "whsec_fuzz"
# Examples per operation and phase: the whole file runs in about two minutes.
MAX_EXAMPLES = int(os.environ.get("PARLEY_SCHEMATHESIS_EXAMPLES", "40"))
CHECKS = "not_a_server_error,response_schema_conformance"
EDIT = "PATCH /api/v1/messages/{message_id}"
READ = "POST /api/v1/messages/{message_id}/read"


@dataclass
class World:
    """The stack, and a conversation in it: a customer's message and an agent's reply."""

    stack: Stack
    customer_id: str
    customer_token: str
    agent_tokens: list[str]
    customer_message: str
    agent_message: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from notifications.vapid import generate_vapid_keys

    keys = generate_vapid_keys()
    stack, drop = start_stack(
        tmp_path_factory.mktemp("schemathesis"),
        extra_env={
            "INBOUND_WEBHOOK_SECRETS": f"{WEBHOOK_SOURCE}={WEBHOOK_SECRET}",
            "VAPID_PRIVATE_KEY": keys.private_key,
            "VAPID_PUBLIC_KEY": keys.public_key,
            # Push only to a closed port on this machine, whatever endpoint is registered.
            "PUSH_ENDPOINT_ALLOWED_HOSTS": "127.0.0.1:9",
            "PUSH_ENDPOINT_INSECURE_HOSTS": "127.0.0.1:9",
        },
    )
    try:
        customer = stack.register_customer()
        agents = [stack.agent_token(), stack.agent_token()]  # before any fuzzed login can rate-limit "agent"
        cm, am = str(uuid.uuid4()), str(uuid.uuid4())
        sent = http("POST", f"{stack.url}/api/v1/messages", {"message_id": cm, "body": "Where is my parcel?"},
                    token=customer["token"])
        replied = http("POST", f"{stack.url}/api/v1/conversations/{customer['customer_id']}/messages",
                       {"message_id": am, "body": "Let me check."}, token=agents[0])
        assert (sent[0], replied[0]) == (201, 201), (sent, replied)
        yield World(stack, customer["customer_id"], customer["token"], agents, cm, am)
    finally:
        stop_stack(stack)
        drop()


def schemathesis(stack: Stack, credential: str, workdir: Path, known: dict[str, dict[str, str]], *options: str) -> str:
    """``st run`` against the stack with ``Authorization: Bearer <credential>``; its output.

    ``known``: path parameters to use instead of generated UUIDs, by
    "METHOD /path" of the operation ("*": every operation)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": __name__, "PYTHONPATH": str(ROOT), "PARLEY_FUZZ_KNOWN": json.dumps(known)}
    command = [
        ST, "run", f"{stack.url}/api/v1/openapi.json", "--url", stack.url,
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--request-timeout", "10",
        "--header", f"Authorization: Bearer {credential}", *options,
    ]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"schemathesis failed:\n{output}\n\nserver logs:\n{stack.dump_logs()}"
    assert re.search(r"\d+ generated", output), output
    return output


def assert_server_unharmed(stack: Stack) -> None:
    """Healthy, the pipeline caught up, and no traceback in any log."""
    deadline = time.monotonic() + 30
    while True:
        status, health = http("GET", f"{stack.url}/healthz")
        pipeline = health.get("consumers", {}).get("pipeline", {}) if isinstance(health, dict) else {}
        if status == 200 and pipeline.get("running") and pipeline.get("lag") == 0:
            break
        assert time.monotonic() < deadline, f"not healthy after fuzzing: {status} {health}\n{stack.dump_logs()}"
        time.sleep(0.5)
    for log in stack.logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and "Internal Server Error" not in text, f"{log.name}:\n{text[-6000:]}"


def test_as_a_customer(world, tmp_path):
    known = {EDIT: {"message_id": world.customer_message}, READ: {"message_id": world.agent_message}}
    schemathesis(world.stack, world.customer_token, tmp_path, known)
    assert_server_unharmed(world.stack)


def test_as_an_agent(world, tmp_path):
    token, spare = world.agent_tokens
    known = {"*": {"customer_id": world.customer_id}, EDIT: {"message_id": world.agent_message},
             READ: {"message_id": world.customer_message}}
    # Everything but revoking the token the run is using, which would leave the rest of it only 401s ...
    # (and erasing the customer the whole module fuzzes with: the host application's run does that, last)
    schemathesis(world.stack, token, tmp_path / "agent", known, "--exclude-path", "/api/v1/auth/agent/token",
                 "--exclude-path", "/api/v1/customers/{customer_id}/erase")
    # ... which a run of its own, with a token to spare, does.
    schemathesis(world.stack, spare, tmp_path / "revoke", known, "--include-path", "/api/v1/auth/agent/token")
    assert_server_unharmed(world.stack)


def test_as_the_host_application_and_a_webhook_sender(world, tmp_path):
    schemathesis(
        world.stack, world.stack.env["PARLEY_INTEGRATION_KEY"], tmp_path, {"*": {"customer_id": world.customer_id}},
        "--include-path-regex", r"^/(api/v1/customers|webhooks/)",
    )
    assert_server_unharmed(world.stack)


if os.environ.get("SCHEMATHESIS_HOOKS") == __name__:  # imported by `st run` as its hooks
    import schemathesis as st_hooks
    from schemathesis.core import NotSet

    from inbound import signatures

    KNOWN: dict[str, dict[str, str]] = json.loads(os.environ.get("PARLEY_FUZZ_KNOWN", "{}"))

    def _is_uuid(value: Any) -> bool:
        try:
            uuid.UUID(str(value))
            return True
        except ValueError:
            return False

    def _sign(case: Any) -> None:
        """Deliver to the configured source, signed over the exact bytes sent, so
        that fuzzed payloads get past the signature to the parser and the store."""
        case.path_parameters["source"] = WEBHOOK_SOURCE
        body = case.body
        if isinstance(body, NotSet):
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        else:
            try:  # what the transport would send for it (None: the JSON null)
                raw = json.dumps(body, allow_nan=False).encode("utf-8")
            except (TypeError, ValueError):
                return  # not JSON: goes unsigned, and is refused as such
            case.body = raw
        header = signatures.header_value([WEBHOOK_SECRET], int(time.time()), raw)
        case.headers = {**(case.headers or {}), signatures.HEADER: header}

    @st_hooks.hook
    def before_call(context: Any, case: Any, **kwargs: Any) -> None:
        operation = f"{case.operation.method.upper()} {case.operation.path}"
        for name, value in {**KNOWN.get("*", {}), **KNOWN.get(operation, {})}.items():
            if _is_uuid(case.path_parameters.get(name)):  # a malformed one stays, to be refused
                case.path_parameters[name] = value
        if case.operation.path == WEBHOOK_PATH:
            _sign(case)
