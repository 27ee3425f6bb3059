"""Each refusal is logged once, in the configured format, in debug mode as in production."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

REQUEST = """
import django
django.setup()
from django.test import Client
c = Client()
assert c.get("/api/v1/conversations").status_code == 401
assert c.get("/api/v1/no-such-endpoint").status_code == 404
"""


@pytest.mark.parametrize("debug", ["1", "0"])
def test_each_4xx_is_logged_once(debug, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "project.settings", "PARLEY_DEBUG": debug,
           "DJANGO_SECRET_KEY": "x" * 50, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "ALLOWED_HOSTS": "testserver", "PARLEY_HTTPS": "0",
           "PARLEY_KEYS": "k1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}
    done = subprocess.run([sys.executable, "-c", REQUEST], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    log = done.stderr.splitlines()
    assert len([line for line in log if line.endswith("Unauthorized: /api/v1/conversations")]) == 1, log
    assert len([line for line in log if line.endswith("Not Found: /api/v1/no-such-endpoint")]) == 1, log
    assert all(" WARNING django.request: " in line for line in log if "/api/v1/" in line), log
