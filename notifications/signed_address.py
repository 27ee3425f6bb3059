"""A customer's email address in a signed link: who, which address, and for what (the salt).

The unsubscribe link and the address-confirmation link both carry this; each
has its own salt, so one can never be passed off as the other.
"""

from __future__ import annotations

import uuid

from django.core import signing


def sign_address(salt: str, customer_id: uuid.UUID, email: str) -> str:
    return signing.dumps({"c": str(customer_id), "e": email}, salt=salt)


def read_address(salt: str, token: str, max_age: int | None = None) -> tuple[uuid.UUID, str]:
    """The customer and address a token signed with ``salt`` names; ValueError if forged,
    damaged, expired (past ``max_age`` seconds) or signed for something else."""
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
        return uuid.UUID(data["c"]), str(data["e"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ValueError("not a valid link") from None
