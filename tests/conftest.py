"""Suite-wide switches: which backends this run covers, and failing loudly.

Tests marked ``postgres`` need PostgreSQL and are left out (deselected,
not skipped) of a run on SQLite; ``redis`` likewise without REDIS_URL.
With PARLEY_REQUIRE_SERVICES=1 (CI) a missing service fails the run.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PARLEY_REQUIRE_SERVICES") != "1":
        return
    db, redis = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    problems = []
    if not db.startswith("postgres"):
        problems.append("DATABASE_URL must name PostgreSQL")
    elif not _reachable(db, 5432):
        problems.append(f"PostgreSQL unreachable at {db}")
    if not redis:
        problems.append("REDIS_URL must be set")
    elif not _reachable(redis, 6379):
        problems.append(f"Redis unreachable at {redis}")
    if problems:
        raise pytest.UsageError("PARLEY_REQUIRE_SERVICES=1 but " + "; ".join(problems))


@pytest.hookimpl(trylast=True)  # after the session's fixtures (pytest-django's database) are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """pytest-django deletes the SQLite test database's file but not the WAL and
    shared-memory files beside it (journal_mode=WAL): delete them too, so a run
    leaves nothing in the checkout."""
    from django.conf import settings

    if not settings.configured or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        return
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if not name:
        return
    for suffix in ("-wal", "-shm", "-journal"):
        Path(name + suffix).unlink(missing_ok=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    has_redis = bool(os.environ.get("REDIS_URL"))
    keep, drop = [], []
    for item in items:
        if (item.get_closest_marker("postgres") and not on_postgres) or (
            item.get_closest_marker("redis") and not has_redis
        ):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# -- shared fixtures ---------------------------------------------------------------

import json as _json  # noqa: E402
import uuid as _uuid  # noqa: E402
from dataclasses import dataclass as _dataclass  # noqa: E402
from typing import Any as _Any  # noqa: E402


@_dataclass
class Caller:
    """A Django test client that speaks JSON with a bearer token."""

    client: _Any
    token: str
    id: str

    def _headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **params: _Any) -> _Any:
        return self.client.get(path, params, **self._headers())

    def post(self, path: str, body: _Any = None, raw: bytes | None = None, content_type: str = "application/json") -> _Any:
        data = raw if raw is not None else _json.dumps(body if body is not None else {})
        return self.client.post(path, data, content_type=content_type, **self._headers())

    def patch(self, path: str, body: _Any) -> _Any:
        return self.client.patch(path, _json.dumps(body), content_type="application/json", **self._headers())

    def delete(self, path: str) -> _Any:
        return self.client.delete(path, **self._headers())


@pytest.fixture(autouse=True)
def _private_cache(settings: _Any) -> None:
    """Each test counts rate limits in a cache of its own, never a shared Redis.

    And no NOTIFY connection outlives the test database (the e2e servers,
    separate processes with databases of their own, keep theirs)."""
    settings.PARLEY_CROSS_PROCESS_WAKEUP = False
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": _uuid.uuid4().hex}
    }


@pytest.fixture(autouse=True)
def _private_media(settings: _Any, tmp_path_factory: _Any) -> _Any:
    """Each test stores attachments in a folder of its own (never the checkout's media/)."""
    root = tmp_path_factory.mktemp("media")
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                        "OPTIONS": {"location": str(root), "base_url": None}},
    }
    return root


@pytest.fixture
def make_customer(db: _Any) -> _Any:
    from django.test import Client

    from accounts.tokens import issue_customer_token
    from customers.services import customer_register

    def make(name: str = "Ada Lovelace", email: str = "ada@example.com", external_id: str | None = None) -> Caller:
        reg = customer_register(name=name, email=email, external_id=external_id)
        return Caller(Client(), issue_customer_token(reg.customer.id), str(reg.customer.id))

    return make


@pytest.fixture
def customer(make_customer: _Any) -> Caller:
    return make_customer()


@pytest.fixture
def make_agent(db: _Any) -> _Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.principals import issue_agent_token

    def make(username: str = "grace") -> Caller:
        user = get_user_model().objects.create_user(username, password="pw-" + username, is_staff=True, first_name=username.title())
        return Caller(Client(), issue_agent_token(user), str(user.pk))

    return make


@pytest.fixture
def agent(make_agent: _Any) -> Caller:
    return make_agent()


@pytest.fixture
def project() -> _Any:
    """Run the pipeline (the read models, the fan-out) until it has caught up with
    the log, then the groups that follow it (push, webhooks, email fallback)."""
    from project.bootstrap import FOLLOWERS, catch_up

    def run() -> None:
        catch_up("pipeline", *FOLLOWERS)

    return run


def new_id() -> str:
    return str(_uuid.uuid4())
