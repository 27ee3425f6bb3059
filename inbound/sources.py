"""Which sources exist and their secrets, from ``settings.INBOUND_WEBHOOK_SECRETS``."""

from __future__ import annotations

import re

from django.conf import settings

MAX_SOURCE_CHARS = 32
# No ":" so that "<source>:<external_id>" can never be read two ways, and
# nothing that needs escaping in a URL path segment.
SOURCE_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_SOURCE_CHARS}}}")


def secrets_for(source: str) -> list[str]:
    """The configured secrets of ``source``; empty when it is not a usable source.

    A configured name that breaks the naming rule is treated as unknown
    (``inbound.checks`` reports it at startup), so a misconfiguration can
    never make two channels' customers collide.
    """
    if not SOURCE_NAME.fullmatch(source):
        return []
    configured: dict[str, list[str]] = getattr(settings, "INBOUND_WEBHOOK_SECRETS", {}) or {}
    return [s for s in configured.get(source, []) if s]
