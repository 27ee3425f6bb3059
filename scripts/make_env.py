"""Print a fresh .env for the embedded mode: random secrets and VAPID keys.

`make run` writes it once; delete .env to start over (customer tokens and
push subscriptions made with the old keys stop working).
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def main() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    print(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}")
    print(f"PARLEY_INTEGRATION_KEY={secrets.token_urlsafe(32)}")
    print(f"PARLEY_DEMO_AGENT_PASSWORD={secrets.token_urlsafe(12)}")
    print(f"VAPID_PRIVATE_KEY={b64url(private)}")
    print(f"VAPID_PUBLIC_KEY={b64url(public)}")
    print("VAPID_SUBJECT=mailto:support@example.com")


if __name__ == "__main__":
    main()
