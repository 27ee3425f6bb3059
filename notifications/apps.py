from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        checks.register(check_vapid_keys, checks.Tags.security)


def check_vapid_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn at startup when push cannot work: no key, a broken key, or a public key of another pair."""
    from django.conf import settings

    from notifications.vapid import InvalidKey, public_key_of

    if not settings.VAPID_PRIVATE_KEY:
        return [
            checks.Warning(
                "VAPID_PRIVATE_KEY is not set: push notifications are off.",
                hint="Run `python manage.py generate_vapid_keys` and put its lines into the environment.",
                id="notifications.W001",
            )
        ]
    try:
        derived = public_key_of(settings.VAPID_PRIVATE_KEY)
    except InvalidKey as exc:
        return [checks.Error(f"VAPID_PRIVATE_KEY is not usable: {exc}.", id="notifications.E001")]
    if settings.VAPID_PUBLIC_KEY and settings.VAPID_PUBLIC_KEY.rstrip("=") != derived:
        return [
            checks.Error(
                "VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY.",
                hint=f"The public key of the configured private key is {derived}.",
                id="notifications.E002",
            )
        ]
    return []
