"""What counts as text that can be stored."""

from __future__ import annotations


def is_storable_text(value: str) -> bool:
    """No NUL and no lone surrogates: they are not text, and PostgreSQL cannot
    store them in a text column (a projection would fail on them later)."""
    return "\x00" not in value and not any("\ud800" <= ch <= "\udfff" for ch in value)
