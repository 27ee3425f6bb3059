"""Push delivery's knobs, read once from the settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def push_ttl() -> int:
    """Seconds a push service keeps an undelivered push (RFC 8030 TTL); always > 0."""
    return max(1, int(settings.PUSH_TTL_SECONDS))


def push_configured() -> bool:
    return bool(settings.VAPID_PRIVATE_KEY)


@dataclass(frozen=True)
class DeliveryConfig:
    """Knobs of the worker; ``from_settings`` reads optional ``PUSH_*`` settings."""

    private_key: str
    subject: str
    ttl: int = 24 * 3600
    timeout: float = 10.0  # seconds, per request (connect and read)
    lease_seconds: float = 60.0
    batch: int = 16  # devices per claim (a round: its pushes are marked sent in one commit)
    sends_per_device: int = 10  # per claim; a backlog continues in the next claim
    max_failures: int = 8  # 5xx / redirects / network errors before a row is parked as dead
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    max_retry_after: float = 3600.0
    retention: dt.timedelta = field(default=dt.timedelta(days=7))

    @classmethod
    def from_settings(cls, **overrides: Any) -> DeliveryConfig:
        values: dict[str, Any] = {
            "private_key": settings.VAPID_PRIVATE_KEY,
            "subject": settings.VAPID_SUBJECT,
            "ttl": push_ttl(),
            "timeout": settings.PUSH_TIMEOUT_SECONDS,
            "lease_seconds": settings.PUSH_LEASE_SECONDS,
            "max_failures": settings.PUSH_MAX_FAILURES,
            "backoff_base": settings.PUSH_BACKOFF_BASE_SECONDS,
            "batch": settings.PUSH_CLAIM_BATCH,
        }
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if self.ttl <= 0:
            raise ValueError("TTL must be positive")
        # A device's lease must outlive the sends made under it, or a second
        # worker could take the device over while the first is still sending.
        if self.lease_seconds < 3 * self.timeout:
            raise ValueError("lease_seconds must be at least three request timeouts")
