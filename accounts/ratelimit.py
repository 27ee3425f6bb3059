"""A small fixed-window rate limit on Django's cache framework.

The embedded mode's default cache is per-process local memory: the limit
then holds per process, which is what one `manage.py serve` process needs.
Deployments with several web processes point CACHES at Redis (REDIS_URL
does) to share the count. While that cache is unreachable the limits keep
working, counted per process in local memory, rather than failing the
request: a Redis outage must not turn logins into server errors.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

log = logging.getLogger(__name__)

_local = LocMemCache("parley-ratelimit-fallback", {})
_falling_back = False


def _increment(backend: Any, key: str, ttl: int) -> int:
    """Add one to the counter ``key`` of ``backend`` (created with ``ttl`` seconds to live); the new count.

    On Redis one round trip: ``SET key 0 EX ttl NX`` then ``INCR key``,
    pipelined (the send budget counts every message, so this is on the
    live path). Django's cache API needs up to three (``add``, then
    ``incr``, which checks ``exists`` first); other backends use it.
    """
    if isinstance(backend, RedisCache):
        full = backend.make_and_validate_key(key)
        # Django's RedisCache keeps its redis-py client behind ``_cache``
        # (stable since Django 4.0); the value format matches: integers
        # are stored as plain numbers, which ``get`` reads back.
        pipe = backend._cache.get_client(full, write=True).pipeline(transaction=False)  # type: ignore[attr-defined]
        pipe.set(full, 0, ex=ttl, nx=True)
        pipe.incr(full)
        return int(pipe.execute()[1])
    # add() is atomic where the backend is (LocMem, Redis, Memcached): the first caller creates the counter.
    if backend.add(key, 1, timeout=ttl):
        return 1
    try:
        return int(backend.incr(key))
    except ValueError:  # expired between add() and incr()
        backend.add(key, 1, timeout=ttl)
        return 1


class _Counter:
    """The shared cache, or this process's memory while the shared one fails."""

    def increment(self, key: str, ttl: int) -> int:
        return self._call(lambda backend: _increment(backend, key, ttl))

    def __getattr__(self, method: str) -> Any:
        return lambda *args, **kwargs: self._call(lambda backend: getattr(backend, method)(*args, **kwargs))

    @staticmethod
    def _call(operation: Any) -> Any:
        global _falling_back
        try:
            # The backend itself, not django.core.cache.cache (a proxy to it),
            # so that _increment can tell Redis.
            result = operation(caches[DEFAULT_CACHE_ALIAS])
        except ValueError:  # incr() of a missing key: an answer, not a failure
            raise
        except Exception:
            if not _falling_back:
                log.warning("rate-limit cache unreachable: counting in this process until it is back", exc_info=True)
            _falling_back = True
            return operation(_local)
        if _falling_back:
            log.info("rate-limit cache reachable again")
            _falling_back = False
        return result


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
    count = cache.increment(cache_key, window + 1)
    if count > limit:
        return Verdict(False, start + window - now)
    return Verdict(True, 0)


def address_bucket(address: str) -> str:
    """What a per-address limit counts: the address, or for IPv6 its /64 (one host's usual
    share: a client that owns a /64 could otherwise take a fresh address per attempt)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_bucket(request: HttpRequest) -> str:
    """The client's address as per-address limits count it (address_bucket)."""
    return address_bucket(client_ip(request))


def client_ip(request: HttpRequest) -> str:
    """The client's address: the peer's, or behind a trusted proxy the one it
    reported in X-Forwarded-For (PARLEY_TRUSTED_PROXIES; project.asgi)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")
