"""Print a fresh .env for the embedded mode: random secrets and VAPID keys.

`make run` writes it once; delete .env to start over (customer tokens and
push subscriptions made with the old keys stop working).
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

# Runs before Django is configured: notifications.vapid needs only cryptography.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifications.vapid import generate_vapid_keys  # noqa: E402


def main() -> None:
    print(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}")
    print(f"PARLEY_INTEGRATION_KEY={secrets.token_urlsafe(32)}")
    print(f"PARLEY_DEMO_AGENT_PASSWORD={secrets.token_urlsafe(12)}")
    print(generate_vapid_keys().env_lines())
    print("VAPID_SUBJECT=mailto:support@example.com")


if __name__ == "__main__":
    main()
