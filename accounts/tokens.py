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

import datetime as dt
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


# -- chat links in emails ---------------------------------------------------------------
#
# An email travels further than a page (forwarded, kept in a mailbox for
# years), so the link it carries is a token of its own: signed with another
# salt, and valid for PARLEY_EMAIL_LINK_MAX_AGE only. The chat page accepts it
# like a customer token and stores a fresh customer token in its cookie.

LINK_PREFIX = "pe."
_LINK_SALT = "parley.email.chat_link"


class _SignedAt(signing.TimestampSigner):
    """A signer whose clock is given (links issued "at" a time, for tests and replays)."""

    def __init__(self, *, at: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._at = at

    def timestamp(self) -> str:
        return signing.b62_encode(int(self._at))


def _link_signer(at: dt.datetime | None = None) -> signing.TimestampSigner:
    key = getattr(settings, "CUSTOMER_TOKEN_KEY", "") or settings.SECRET_KEY
    if at is None:
        return signing.TimestampSigner(key=key, salt=_LINK_SALT, algorithm="sha256", fallback_keys=[])
    return _SignedAt(at=at.timestamp(), key=key, salt=_LINK_SALT, algorithm="sha256", fallback_keys=[])


def issue_chat_link_token(customer_id: uuid.UUID, *, at: dt.datetime | None = None) -> str:
    """A token for the chat link of an email, valid PARLEY_EMAIL_LINK_MAX_AGE seconds from ``at`` (now)."""
    return LINK_PREFIX + _link_signer(at).sign(str(customer_id))


def verify_link_token(token: str) -> tuple[uuid.UUID, str]:
    """The customer a chat link's token names, and the customer token to keep in the page's cookie.

    Accepts a customer token (kept as it is) and an email's chat link token
    (exchanged for a fresh customer token); raises InvalidCustomerToken otherwise.
    """
    if not token.startswith(LINK_PREFIX):
        return verify_customer_token(token), token
    try:
        value = _link_signer().unsign(token[len(LINK_PREFIX) :], max_age=settings.PARLEY_EMAIL_LINK_MAX_AGE)
        customer_id = uuid.UUID(value)
    except signing.SignatureExpired:
        raise InvalidCustomerToken("the chat link has expired", code="token_expired") from None
    except (signing.BadSignature, ValueError):
        raise InvalidCustomerToken("the chat link is not valid") from None
    return customer_id, issue_customer_token(customer_id)
