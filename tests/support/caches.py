"""The real cache for tests of counters kept in it (rate limits, the login throttle)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any


def real_cache(settings: Any) -> Iterator[str | None]:
    """Redis when the run has one (under a key prefix of the test's own, removed
    after; yields the prefix), else the test's private local memory (yields None)."""
    url = os.environ.get("REDIS_URL")
    if not url:
        yield None
        return
    prefix = f"test-cache-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": url, "KEY_PREFIX": prefix}}
    from django.core.cache import cache, caches
    from django.core.cache.backends.redis import RedisCache

    assert isinstance(caches["default"], RedisCache)
    assert cache.add("probe", 1) and cache.incr("probe") == 2  # really there
    yield prefix
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
