"""A test run leaves no files in the checkout (the SQLite test database's WAL and
shared-memory files included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_sqlite_test_database_lives_outside_the_checkout(settings):
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        assert ROOT not in Path(settings.DATABASES["default"]["TEST"]["NAME"]).parents


def test_a_run_on_sqlite_leaves_no_database_files_behind():
    before = set(ROOT.glob(".test-*")) | set(ROOT.glob("*.sqlite3*"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PARLEY_REQUIRE_SERVICES")
           and not k.startswith("PYTEST")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/integration/test_customer_tokens.py", "-m", "not e2e"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (set(ROOT.glob(".test-*")) | set(ROOT.glob("*.sqlite3*"))) - before == set()
