"""Customer tokens: signed, expiring, and bound to one customer.

Identity issues and checks them; the customers context knows nothing of
them (a token names a customer by id only).

A token is ``pc.<customer uuid>.<nonce>:<timestamp>:<signature>`` signed
with CUSTOMER_TOKEN_KEY (default: SECRET_KEY). It cannot be forged or
widened without the key; rotating the key revokes every token at once. The
random nonce makes every issued token distinct, even two issued for one
customer within the same second; tokens issued before it existed
(``pc.<customer uuid>:<timestamp>:<signature>``) are still accepted.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core import signing

from accounts.errors import AuthenticationFailed

PREFIX = "pc."
_NONCE_SEP = "."  # neither in a UUID's text nor in the signer's ":" separator
_SALT = "parley.customers.token"  # unchanged since tokens lived in customers/: issued tokens stay valid


class InvalidCustomerToken(AuthenticationFailed):
    """The token is not a customer token, is forged, or has expired."""


def _signer() -> signing.TimestampSigner:
    key = getattr(settings, "CUSTOMER_TOKEN_KEY", "") or settings.SECRET_KEY
    # No fallback keys: rotation must revoke.
    return signing.TimestampSigner(key=key, salt=_SALT, algorithm="sha256", fallback_keys=[])


def issue_customer_token(customer_id: uuid.UUID) -> str:
    # token_urlsafe's alphabet (A-Z a-z 0-9 - _) has neither "." nor ":".
    return PREFIX + _signer().sign(f"{customer_id}{_NONCE_SEP}{secrets.token_urlsafe(9)}")


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
    # The signed value is "<uuid>.<nonce>", or "<uuid>" in tokens issued before nonces.
    customer, _, _nonce = value.partition(_NONCE_SEP)
    try:
        return uuid.UUID(customer)
    except ValueError:
        raise InvalidCustomerToken("the customer token is not valid") from None
