"""The unsubscribe token of an email: which customer, which address.

Signed (Django's signing, ``DJANGO_SECRET_KEY``, a salt of its own) so that
nobody can unsubscribe an address without holding an email sent to it.
It does not expire: an unsubscribe link must keep working for as long as
the email is kept (RFC 8058 asks that it work without further login).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from notifications.signed_address import read_address, sign_address

_SALT = "parley.email.unsubscribe"


@dataclass(frozen=True)
class Unsubscription:
    customer_id: uuid.UUID
    email: str


class InvalidUnsubscribeToken(Exception):
    """Forged, damaged, or not an unsubscribe token."""


def issue_unsubscribe_token(customer_id: uuid.UUID, email: str) -> str:
    return sign_address(_SALT, customer_id, email)


def verify_unsubscribe_token(token: str) -> Unsubscription:
    try:
        return Unsubscription(*read_address(_SALT, token))
    except ValueError:
        raise InvalidUnsubscribeToken("not a valid unsubscribe link") from None
