"""Ids as text: one accepted form, so that equal ids are equal strings.

``uuid.UUID()`` also takes ``{...}``, ``urn:uuid:...`` and the 32 digits
without hyphens; accepted, they would make one message or customer appear
under several spellings in caches, logs and idempotency keys. Parley takes
only the hex-and-dash form of RFC 9562 (8-4-4-4-12 hex digits). Hex digits
are case-insensitive on input as the RFC asks (Apple's UUID type writes
upper case), and every id Parley writes is lower case.
"""

from __future__ import annotations

import re
import uuid

_CANONICAL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID ``value`` spells in the hex-and-dash form; None for anything else."""
    if not isinstance(value, str) or _CANONICAL.fullmatch(value) is None:
        return None
    return uuid.UUID(value)
