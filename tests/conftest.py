"""Suite-wide switches: which backends this run covers, and failing loudly.

Tests marked ``postgres`` need PostgreSQL and are left out (deselected,
not skipped) of a run on SQLite; ``redis`` likewise without REDIS_URL.
With PARLEY_REQUIRE_SERVICES=1 (CI) a missing service fails the run.
"""

from __future__ import annotations

import os
import socket
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
