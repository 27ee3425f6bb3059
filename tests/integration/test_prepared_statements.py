"""Parley's own statements are prepared on PostgreSQL, as their ``prepare=True`` asks.

Django opens psycopg connections with ``prepare_threshold=None``, under which
psycopg ignores ``prepare=True``: every append and every batch read was
parsed and planned again (docs/operations.md, PARLEY_DB_PREPARE_THRESHOLD).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from chat.commands import Actor, SendMessage
from chat.events import SenderKind
from chat.handlers import send_message
from customers.services import customer_register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _runs() -> dict[str, tuple[int, int]]:
    """This connection's prepared statements: (generic plans, custom plans) of each."""
    with connection.cursor() as c:
        c.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {statement: (generic, custom) for statement, generic, custom in c.fetchall()}


def test_an_append_is_planned_once_per_connection():
    customer = customer_register(name="Prepared").customer
    actor = Actor(SenderKind.CUSTOMER, str(customer.id), "Prepared")
    before = _runs()  # a pooled connection keeps what earlier tests prepared on it
    for i in range(8):
        send_message(SendMessage(uuid.uuid4(), customer.id, actor, f"message {i}"))
    after = _runs()
    ran = {
        statement: sum(runs) - sum(before.get(statement, (0, 0)))
        for statement, runs in after.items()
        if statement.startswith("INSERT INTO parley_events") and runs != before.get(statement)
    }
    assert list(ran.values()) == [8], ran  # one statement, prepared once, run for every send
    [appends] = ran
    assert after[appends][0] > 0  # past its first runs PostgreSQL plans it no more (generic plans)


@pytest.mark.parametrize(("value", "expected"), [(None, "5"), ("off", "None"), ("0", "0")])
def test_the_threshold_comes_from_the_environment(value: str | None, expected: str):
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_DB_PREPARE_THRESHOLD"}
    env.update(PARLEY_DEBUG="1", DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
               DJANGO_SETTINGS_MODULE="project.settings")
    if value is not None:
        env["PARLEY_DB_PREPARE_THRESHOLD"] = value
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; "
         "print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"],
        env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == expected, out.stderr


def _server_options(**environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PARLEY_DB_PLAN_CACHE_MODE", "PARLEY_DB_STATEMENT_TIMEOUT_MS")}
    env.update(PARLEY_DEBUG="1", DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
               DJANGO_SETTINGS_MODULE="project.settings", **environ)
    return subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; "
         "print(settings.DATABASES['default']['OPTIONS'].get('options', '-'))"],
        env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
    )


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "-"),
    ({"PARLEY_DB_PLAN_CACHE_MODE": "force_custom_plan"}, "-c plan_cache_mode=force_custom_plan"),
    ({"PARLEY_DB_PLAN_CACHE_MODE": "force_custom_plan", "PARLEY_DB_STATEMENT_TIMEOUT_MS": "500"},
     "-c plan_cache_mode=force_custom_plan -c statement_timeout=500"),
    ({"PARLEY_DB_STATEMENT_TIMEOUT_MS": "500"}, "-c statement_timeout=500"),
])
def test_the_servers_settings_come_from_the_environment(environ: dict[str, str], expected: str):
    out = _server_options(**environ)
    assert out.returncode == 0 and out.stdout.strip() == expected, out.stderr


def test_an_unknown_plan_cache_mode_stops_the_start_naming_the_choices():
    out = _server_options(PARLEY_DB_PLAN_CACHE_MODE="sometimes")
    assert out.returncode != 0
    assert "PARLEY_DB_PLAN_CACHE_MODE='sometimes': auto, force_custom_plan or force_generic_plan" in out.stderr
