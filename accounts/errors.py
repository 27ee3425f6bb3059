"""What identity refuses."""

from __future__ import annotations

from kernel.errors import DomainError


class AuthenticationFailed(DomainError):
    """The caller's credentials prove nothing: missing, malformed, revoked or expired."""

    code = "invalid_token"
    status = 401
