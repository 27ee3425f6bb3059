"""Signing and verifying inbound webhook deliveries. Plain Python only.

A delivery carries ``X-Parley-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``
where each ``v1`` is HMAC-SHA256(secret, "<t>.<raw body>") in hex. A source
may have several secrets configured and a sender may send several ``v1``
values, so either side can rotate its secret without a flag day: a delivery
is authentic if any ``v1`` matches any configured secret.

The timestamp is inside the signed text, so it cannot be changed without
the secret; refusing timestamps more than ``TOLERANCE_SECONDS`` away bounds
how long a captured request can be replayed (and a replay inside that window
is only a duplicate, which the idempotency key absorbs).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence

from kernel.errors import DomainError

HEADER = "X-Parley-Signature"
SCHEME = "v1"
TOLERANCE_SECONDS = 300

# Bounds on what we are willing to parse from an unauthenticated header:
# enough for any honest rotation, too little to make a request expensive.
MAX_SIGNATURES = 8
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class SignatureError(DomainError):
    """A delivery whose signature does not prove it came from the source."""

    code = "invalid_signature"
    status = 401


class InvalidSignature(SignatureError):
    """The header is missing or malformed, or no signature matches a secret."""


class StaleSignature(SignatureError):
    """The signature matches, but its timestamp is too far from now."""

    code = "stale_signature"


def compute(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def header_value(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """A complete header value signing ``body`` with every one of ``secrets``.

    Senders use this during a rotation to sign with the old and the new
    secret at once; Parley's own tests use it to act as a sender.
    """
    parts = [f"t={timestamp}"] + [f"{SCHEME}={compute(s, timestamp, body)}" for s in secrets]
    return ",".join(parts)


def parse_header(header: str | None) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures (lower-case hex) of a header.

    Unknown schemes are ignored so senders can add new ones later; a header
    without exactly one valid ``t`` or without a well-formed ``v1`` is invalid.
    """
    if not header:
        raise InvalidSignature(f"the {HEADER} header is missing")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise InvalidSignature(f"the {HEADER} header is malformed")
        key, value = key.strip(), value.strip()
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise InvalidSignature(f"the {HEADER} header needs exactly one t=<unix seconds>")
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidSignature(f"the {HEADER} header has more than {MAX_SIGNATURES} signatures")
    valid = [s.lower() for s in signatures if _HEX_SHA256.fullmatch(s)]
    if not valid:
        raise InvalidSignature(f"the {HEADER} header has no {SCHEME}=<hex HMAC-SHA256> signature")
    return int(timestamps[0]), valid


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """Check that ``body`` was signed by one of ``secrets`` recently; return ``t``.

    Raises InvalidSignature when no ``v1`` value matches any secret (checked
    first, so an unauthenticated caller learns nothing about the clock), and
    StaleSignature when ``t`` is more than ``tolerance`` seconds from ``now``.
    """
    timestamp, signatures = parse_header(header)
    # Compare every pair in constant time: the comparison must not reveal how
    # many leading characters of a forged signature were right.
    matched = False
    for secret in secrets:
        expected = compute(secret, timestamp, body).encode("ascii")
        for candidate in signatures:
            matched |= hmac.compare_digest(expected, candidate.encode("ascii"))
    if not matched:
        raise InvalidSignature("no signature matches a secret of this source")
    if abs(now - timestamp) > tolerance:
        raise StaleSignature(f"the signature timestamp is more than {tolerance} seconds from the server's clock")
    return timestamp
