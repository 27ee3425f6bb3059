"""VAPID keys and subscription keys (notifications.vapid is plain Python)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from notifications.subscriptions import _host_matches
from notifications.vapid import (
    InvalidKey,
    b64url_decode,
    b64url_encode,
    check_auth_secret,
    check_p256dh,
    generate_vapid_keys,
    public_key_of,
    signer,
)

ROOT = Path(__file__).resolve().parents[2]


def test_generated_keys_are_a_raw_private_scalar_and_its_uncompressed_point():
    keys = generate_vapid_keys()
    assert len(b64url_decode(keys.private_key)) == 32
    point = b64url_decode(keys.public_key)
    assert len(point) == 65 and point[0] == 4
    assert public_key_of(keys.private_key) == keys.public_key
    assert "=" not in keys.private_key + keys.public_key


def test_the_signer_speaks_rfc_8292():
    keys = generate_vapid_keys()
    claims = {"sub": "mailto:a@example.com", "aud": "https://push.example", "exp": 2**31}
    headers = signer(keys.private_key).sign(claims)
    assert headers["Authorization"].startswith("vapid t=")
    assert headers["Authorization"].endswith(f"k={keys.public_key}")


@pytest.mark.parametrize("bad", ["", "AAAA", b64url_encode(b"\x00" * 32), b64url_encode(b"\xff" * 32), "not base64!"])
def test_unusable_private_keys_are_refused(bad):
    with pytest.raises(InvalidKey):
        public_key_of(bad)


def test_subscription_keys_are_checked():
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    raw = b"\x04" + point.x.to_bytes(32, "big") + point.y.to_bytes(32, "big")
    assert check_p256dh(b64url_encode(raw)) == raw
    assert check_p256dh(b64url_encode(raw) + "=") == raw  # padding is fine
    with pytest.raises(InvalidKey):
        check_p256dh(b64url_encode(b"\x04" + b"\x01" * 64))
    assert check_auth_secret(b64url_encode(b"k" * 16)) == b"k" * 16
    with pytest.raises(InvalidKey):
        check_auth_secret(b64url_encode(b"k" * 15))


@pytest.mark.parametrize(
    ("host", "port", "entries", "ok"),
    [
        ("fcm.googleapis.com", None, ["fcm.googleapis.com"], True),
        ("fcm.googleapis.com", 443, ["fcm.googleapis.com"], True),
        ("fcm.googleapis.com", 8443, ["fcm.googleapis.com"], False),
        ("a.notify.windows.com", None, ["*.notify.windows.com"], True),
        ("notify.windows.com", None, ["*.notify.windows.com"], False),
        ("evilnotify.windows.com", None, ["*.notify.windows.com"], False),
        ("127.0.0.1", 8765, ["127.0.0.1:8765"], True),
        ("127.0.0.1", 8766, ["127.0.0.1:8765"], False),
        ("127.0.0.1", None, ["127.0.0.1:8765"], False),
        ("localhost", None, ["LOCALHOST"], True),
        ("x", None, [""], False),
    ],
)
def test_endpoint_host_rules(host, port, entries, ok):
    assert _host_matches(host, port, entries, 443) is ok


def test_make_env_writes_vapid_keys_without_django():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_env.py")], capture_output=True, text=True, check=True
    ).stdout
    values = dict(line.split("=", 1) for line in out.strip().splitlines())
    assert public_key_of(values["VAPID_PRIVATE_KEY"]) == values["VAPID_PUBLIC_KEY"]
    assert values["VAPID_SUBJECT"].startswith("mailto:")
    # A demo inbound webhook source, so docs/webhooks.md's examples work against `make run`.
    source, secret = values["INBOUND_WEBHOOK_SECRETS"].split("=", 1)
    assert source == "sms" and secret.startswith("whsec_") and len(secret) == len("whsec_") + 64


def test_make_env_prints_the_webhook_line_alone_for_an_older_env():
    run = [sys.executable, str(ROOT / "scripts" / "make_env.py"), "--inbound-webhook"]
    first, second = (subprocess.run(run, capture_output=True, text=True, check=True).stdout for _ in range(2))
    assert first.startswith("INBOUND_WEBHOOK_SECRETS=sms=whsec_") and first.count("\n") == 1
    assert first != second  # a secret of its own each time


def test_generate_vapid_keys_command_prints_env_lines():
    # As a deployment runs it: production settings, its secret key already in the environment.
    env = {**os.environ, "PARLEY_DEBUG": "0", "DJANGO_SECRET_KEY": "k" * 50, "PARLEY_KEYS": "k1:" + "A" * 43}
    out = subprocess.run(
        [sys.executable, "manage.py", "generate_vapid_keys"], cwd=ROOT, capture_output=True, text=True, check=True,
        env=env,
    ).stdout
    lines = out.strip().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"]
    private, public = (line.split("=", 1)[1] for line in lines)
    assert public_key_of(private) == public
