"""Customer tokens: signed, expiring, and bound to one customer.

Identity issues and checks them; the customers context knows nothing of
them (a token names a customer by id only).

A token is ``pc.<customer uuid>:<timestamp>:<signature>`` signed with
CUSTOMER_TOKEN_KEY (default: SECRET_KEY). It cannot be forged or widened
without the key; rotating the key revokes every token at once.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing

from accounts.errors import AuthenticationFailed

PREFIX = "pc."
_SALT = "parley.customers.token"  # unchanged since tokens lived in customers/: issued tokens stay valid


class InvalidCustomerToken(AuthenticationFailed):
    """The token is not a customer token, is forged, or has expired."""


def _signer() -> signing.TimestampSigner:
    key = getattr(settings, "CUSTOMER_TOKEN_KEY", "") or settings.SECRET_KEY
    # No fallback keys: rotation must revoke.
    return signing.TimestampSigner(key=key, salt=_SALT, algorithm="sha256", fallback_keys=[])


def issue_customer_token(customer_id: uuid.UUID) -> str:
    return PREFIX + _signer().sign(str(customer_id))


def verify_customer_token(token: str) -> uuid.UUID:
    """The customer a token names; raises InvalidCustomerToken otherwise."""
    if not token.startswith(PREFIX):
        raise InvalidCustomerToken("not a customer token")
    try:
        value = _signer().unsign(token[len(PREFIX) :], max_age=settings.CUSTOMER_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise InvalidCustomerToken("the customer token has expired", code="token_expired") from None
    except signing.BadSignature:
        raise InvalidCustomerToken("the customer token is not valid") from None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidCustomerToken("the customer token is not valid") from None
