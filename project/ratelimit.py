"""A small fixed-window rate limit on Django's cache framework.

The embedded mode's default cache is per-process local memory: the limit
then holds per process, which is what one `manage.py serve` process needs.
Deployments with several web processes should point CACHES at Redis
(django.core.cache.backends.redis.RedisCache) to share the count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window resets (0 when allowed)


def _window(scope: str, key: str, window: int) -> tuple[str, int, int]:
    now = int(time.time())
    start = now - now % window
    return f"parley:rl:{scope}:{key}:{start}", now, start


def peek(scope: str, key: str, *, limit: int, window: int) -> Verdict:
    """Whether ``key`` is already over ``limit`` in this window, without counting."""
    cache_key, now, start = _window(scope, key, window)
    if int(cache.get(cache_key) or 0) >= limit:
        return Verdict(False, start + window - now)
    return Verdict(True, 0)


def hit(scope: str, key: str, *, limit: int, window: int) -> Verdict:
    """Count one attempt of ``key`` in ``scope``; refuse past ``limit`` per ``window`` seconds."""
    cache_key, now, start = _window(scope, key, window)
    # add() is atomic where the backend is (LocMem, Redis, Memcached): the first caller creates the counter.
    if cache.add(cache_key, 1, timeout=window + 1):
        count = 1
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add() and incr()
            cache.add(cache_key, 1, timeout=window + 1)
            count = 1
    if count > limit:
        return Verdict(False, start + window - now)
    return Verdict(True, 0)


def client_ip(request: HttpRequest) -> str:
    """The peer address. Behind a proxy, run Daphne with --proxy-headers so it is the client's."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")
