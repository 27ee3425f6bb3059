"""A small fixed-window rate limit on Django's cache framework.

The embedded mode's default cache is per-process local memory: the limit
then holds per process, which is what one `manage.py serve` process needs.
Deployments with several web processes point CACHES at Redis (REDIS_URL
does) to share the count. While that cache is unreachable the limits keep
working, counted per process in local memory, rather than failing the
request: a Redis outage must not turn logins into server errors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache as shared
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest

log = logging.getLogger(__name__)

_local = LocMemCache("parley-ratelimit-fallback", {})
_falling_back = False


class _Counter:
    """The shared cache, or this process's memory while the shared one fails."""

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            global _falling_back
            try:
                result = getattr(shared, method)(*args, **kwargs)
            except ValueError:  # incr() of a missing key: an answer, not a failure
                raise
            except Exception:
                if not _falling_back:
                    log.warning("rate-limit cache unreachable: counting in this process until it is back", exc_info=True)
                _falling_back = True
                return getattr(_local, method)(*args, **kwargs)
            if _falling_back:
                log.info("rate-limit cache reachable again")
                _falling_back = False
            return result

        return call


cache = _Counter()


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
    """The client's address: the peer's, or behind a trusted proxy the one it
    reported in X-Forwarded-For (PARLEY_TRUSTED_PROXIES; project.asgi)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")
