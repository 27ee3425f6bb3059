"""Web Push keys: VAPID key pairs (RFC 8292) and the browser's subscription keys (RFC 8291).

Plain Python (no Django), so ``scripts/make_env.py`` can generate keys before
the project is installed or configured. Keys travel as base64url without
padding: the VAPID private key as the raw 32-byte P-256 scalar, public keys as
the 65-byte uncompressed point, exactly what ``PushManager.subscribe()``'s
``applicationServerKey`` and ``PushSubscription.toJSON()`` use.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "InvalidKey",
    "VapidKeys",
    "b64url_decode",
    "b64url_encode",
    "check_auth_secret",
    "check_p256dh",
    "generate_vapid_keys",
    "public_key_of",
    "signer",
]

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
P256_POINT_BYTES = 65
AUTH_SECRET_BYTES = 16
PRIVATE_KEY_BYTES = 32


class InvalidKey(ValueError):
    """A key that is not what Web Push expects; the message says why."""


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url, padding optional; InvalidKey on any other alphabet."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise InvalidKey("not base64url")
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidKey("not base64url") from None


@dataclass(frozen=True)
class VapidKeys:
    private_key: str
    public_key: str

    def env_lines(self) -> str:
        return f"VAPID_PRIVATE_KEY={self.private_key}\nVAPID_PUBLIC_KEY={self.public_key}"


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def generate_vapid_keys() -> VapidKeys:
    """A fresh P-256 key pair for VAPID."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(PRIVATE_KEY_BYTES, "big")
    return VapidKeys(b64url_encode(private), b64url_encode(_uncompressed(key.public_key())))


def _private_key(private_b64: str) -> ec.EllipticCurvePrivateKey:
    raw = b64url_decode(private_b64.strip())
    if len(raw) != PRIVATE_KEY_BYTES:
        raise InvalidKey(f"a VAPID private key is {PRIVATE_KEY_BYTES} raw bytes, got {len(raw)}")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as exc:  # zero or not below the curve order
        raise InvalidKey(f"not a P-256 private key: {exc}") from None


def public_key_of(private_b64: str) -> str:
    """The base64url uncompressed public point belonging to a VAPID private key."""
    return b64url_encode(_uncompressed(_private_key(private_b64).public_key()))


def signer(private_b64: str):  # type: ignore[no-untyped-def]
    """A py_vapid signer (RFC 8292 ``vapid t=..., k=...``) for pywebpush's ``vapid_private_key``.

    Parsed once and shared: signing does not mutate it. (The claims dict is
    another matter: pywebpush writes ``aud`` and ``exp`` into it, so callers
    pass a fresh one per request.)
    """
    from py_vapid import Vapid02

    return Vapid02(_private_key(private_b64))


def check_p256dh(p256dh: str) -> bytes:
    """The subscription's public key: a 65-byte uncompressed point on P-256."""
    raw = b64url_decode(p256dh)
    if len(raw) != P256_POINT_BYTES or raw[0] != 0x04:
        raise InvalidKey(f"p256dh must be a {P256_POINT_BYTES}-byte uncompressed P-256 point")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise InvalidKey("p256dh is not a point on P-256") from None
    return raw


def check_auth_secret(auth: str) -> bytes:
    """The subscription's authentication secret: 16 bytes."""
    raw = b64url_decode(auth)
    if len(raw) != AUTH_SECRET_BYTES:
        raise InvalidKey(f"auth must be {AUTH_SECRET_BYTES} bytes, got {len(raw)}")
    return raw
