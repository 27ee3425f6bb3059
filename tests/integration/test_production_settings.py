"""Safe by default: what a deployment gets from project.settings, read in
fresh processes with only the environment it sets; and the API's error
shape on every path under its prefixes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from eventstore.keys import new_master_key
from notifications.vapid import generate_vapid_keys
from tests.e2e.conftest import ROOT

DOCUMENTED = ROOT / "docs" / "deploy" / "parley.env"
# Variables of this machine that would change what a fresh process reads.
OURS = ("PARLEY_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "VAPID_", "CSRF_", "LOG_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS) and not k.startswith("PYTEST")}
    return {**env, "DJANGO_SETTINGS_MODULE": "project.settings", **extra}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def documented_env() -> dict[str, str]:
    """docs/deploy/parley.env, its CHANGE_ME values made as docs/deploy.md says."""
    keys = generate_vapid_keys()
    made = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "PARLEY_INTEGRATION_KEY": "integration-" + "k" * 30,
            "VAPID_PRIVATE_KEY": keys.private_key, "VAPID_PUBLIC_KEY": keys.public_key,
            "PARLEY_KEYS": f"k1:{new_master_key()}"}
    values = {}
    for line in DOCUMENTED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = made.get(name, value.replace("CHANGE_ME", "secret"))
    assert "CHANGE_ME" not in "".join(values.values())
    return values


def test_without_a_setting_debug_is_off():
    done = run(["-c", "import django; django.setup(); from django.conf import settings; "
                      "print(settings.DEBUG, settings.SESSION_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT)"],
               clean_env(DJANGO_SECRET_KEY="k" * 50, PARLEY_KEYS=f"k1:{new_master_key()}"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True"]


def test_processes_refuse_to_start_without_the_master_keys():
    done = run(["manage.py", "check"], clean_env(DJANGO_SECRET_KEY="k" * 50))
    assert done.returncode != 0
    assert "PARLEY_KEYS must be set when PARLEY_DEBUG is off" in done.stderr


@pytest.mark.parametrize("command", [["manage.py", "check"], ["manage.py", "runworkers"],
                                     ["-m", "daphne", "project.asgi:application"]])
def test_processes_refuse_to_start_without_the_secret_key(command):
    done = run(command, clean_env())
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when PARLEY_DEBUG is off" in done.stderr


def test_the_documented_production_settings_pass_the_deployment_checks():
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], clean_env(**documented_env()))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_deployment_checks_fail_on_what_the_documented_settings_avoid():
    # The same check, with debug on and plain-http cookies: it fails, so passing above means something.
    env = clean_env(**{**documented_env(), "PARLEY_DEBUG": "1"})
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert done.returncode != 0
    for warning in ("security.W018", "security.W012", "security.W016", "security.W004"):
        assert warning in done.stderr, done.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/nothing"), ("GET", "/api/v1/nothing/"), ("POST", "/api/v1/messages/x/y/z"),
    ("GET", "/api/v2/messages"), ("GET", "/api/"), ("PUT", "/webhooks/v1/inbound"), ("GET", "/api/v1/messages/"),
])
def test_unknown_api_paths_answer_404_in_the_error_shape(client, method, path):
    r = client.generic(method, path)
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/api/v1/messages", "GET, POST"), ("PUT", "/api/v1/badge", "GET"),
    ("POST", "/api/v1/openapi.json", "GET"), ("GET", "/api/v1/auth/agent", "POST"),
    ("PATCH", "/webhooks/v1/inbound/sms", "POST"), ("POST", "/healthz", "GET")
])
def test_a_method_a_route_does_not_take_answers_405_in_the_error_shape_with_allow(client, method, path, allow):
    r = client.generic(method, path)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert r["Allow"] == allow


@pytest.mark.django_db
def test_metrics_answers_another_method_405_with_allow_once_it_exists(client, settings):
    settings.PARLEY_METRICS_KEY = "k" * 32
    r = client.post("/metrics", HTTP_AUTHORIZATION="Bearer " + "k" * 32)
    assert r.status_code == 405
    assert r["Allow"] == "GET, HEAD"
    assert r.json()["error"]["code"] == "method_not_allowed"
