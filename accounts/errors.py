"""What identity refuses."""

from __future__ import annotations

from kernel.errors import DomainError


class AuthenticationFailed(DomainError):
    """The caller's credentials prove nothing: missing, malformed, revoked or expired."""

    code = "invalid_token"
    status = 401


class RateLimited(DomainError):
    """Too many attempts in a window; ``retry_after`` says when to try again."""

    code = "rate_limited"
    status = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class TooManyAttempts(DomainError):
    """A sign-in refused unchecked: its address, or its address on this username, must wait
    ``retry_after`` seconds first (accounts.throttle)."""

    code = "too_many_attempts"
    status = 429

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(f"too many failed sign-ins; try again in {self.retry_after} seconds")


class InvalidDisplayName(DomainError):
    """A display name that is not one: too long, or with control or formatting characters."""

    code = "invalid_display_name"
    status = 400
