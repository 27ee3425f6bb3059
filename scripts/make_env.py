"""Print a fresh .env for the embedded mode: random secrets and VAPID keys.

`make run` writes it once; delete .env to start over (customer tokens and
push subscriptions made with the old keys stop working). The .env also
configures a demo inbound webhook source, `sms`, with a random secret, so
the webhook examples of docs/webhooks.md work against `make run` as they
are, and lets the example host site of the website widget
(examples/widget/, served on http://localhost:8080: docs/widget.md) embed
the chat. `make_env.py --inbound-webhook` prints only the webhook line and
`--widget-origins` only the widget's, `--master-keys` only the master key
of customers' data keys (`make run` appends each to an older .env that
lacks it).
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

# Runs before Django is configured: notifications.vapid needs only cryptography.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifications.vapid import generate_vapid_keys  # noqa: E402


def master_keys_line() -> str:
    """The master key that wraps customers' data keys (docs/privacy.md)."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"PARLEY_KEYS=k1:{key}"


def inbound_webhook_line() -> str:
    """A demo source for the inbound webhooks: `sms`, with its own random secret."""
    return f"INBOUND_WEBHOOK_SECRETS=sms=whsec_{secrets.token_hex(32)}"


def main() -> None:
    if sys.argv[1:] == ["--inbound-webhook"]:
        print(inbound_webhook_line())
        return
    if sys.argv[1:] == ["--master-keys"]:  # for a .env made before per-customer keys
        print(master_keys_line())
        return
    if sys.argv[1:] == ["--widget-origins"]:  # for a .env made before the widget: append it
        print(widget_origins_line())
        return
    print(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}")
    print(f"PARLEY_INTEGRATION_KEY={secrets.token_urlsafe(32)}")
    print(f"PARLEY_DEMO_AGENT_PASSWORD={secrets.token_urlsafe(12)}")
    print(master_keys_line())
    print(generate_vapid_keys().env_lines())
    print("VAPID_SUBJECT=mailto:support@example.com")
    print(inbound_webhook_line())
    print(widget_origins_line())


def widget_origins_line() -> str:
    """The example host site (examples/widget/) may embed the website widget."""
    return f"PARLEY_WIDGET_ORIGINS={EXAMPLE_HOST_SITE}"


#: Where docs/widget.md serves examples/widget/: another site than Parley's 127.0.0.1:8000.
EXAMPLE_HOST_SITE = "http://localhost:8080"


if __name__ == "__main__":
    main()
