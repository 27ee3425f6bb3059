"""Startup checks of the inbound webhook configuration (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from inbound.sources import MAX_SOURCE_CHARS, SOURCE_NAME


@register()
def check_source_names(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every configured source must be a usable name; otherwise its webhooks answer 404."""
    configured: dict[str, list[str]] = getattr(settings, "INBOUND_WEBHOOK_SECRETS", {}) or {}
    return [
        Error(
            f"INBOUND_WEBHOOK_SECRETS names the source {source!r}, which is not 1 to "
            f"{MAX_SOURCE_CHARS} characters of A-Z, a-z, 0-9, '_', '.', '-'",
            hint="rename the source; its webhooks are refused with 404 until then",
            id="inbound.E001",
        )
        for source in configured
        if not SOURCE_NAME.fullmatch(source)
    ]
