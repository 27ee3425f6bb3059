"""Sending one push: Web Push (RFC 8030/8291/8292) over HTTP, and what the answer means.

``WebPushTransport`` encrypts with pywebpush (RFC 8291 aes128gcm) and posts
with urllib3, keeping connections to each push service open between pushes. Three
things a plain ``pywebpush.webpush()`` call does per push are done once
here instead, measured in docs/benchmarks.md:

* the VAPID ``Authorization`` header is signed once per push service
  (audience) and reused until an hour before it expires (RFC 8292 allows
  24 hours; we sign for 12), instead of an ECDSA signature per push;
* the HTTP connection to the push service is kept open between pushes;
* the request goes through urllib3 itself rather than requests, whose
  per-request preparation cost more than the encryption.

Redirects are never followed: a push endpoint is a URL the server posts to,
and a 3xx pointing elsewhere (an internal address, say) is a failed delivery
for that subscription, not a request to make. Every request is made with
``retries=False, redirect=False``, and every pool manager (direct or through a
proxy) is built with ``retries=False`` as its default too, so a request that
forgot the arguments would still not follow one. A 3xx is a failed attempt
(``retry``: backoff, counted towards ``PUSH_MAX_FAILURES``), not ``gone``: a
redirect says nothing about whether the subscription expired. It is logged as
a warning with where it pointed. Nothing else sends pushes: pywebpush only
encrypts here (``WebPusher.encode``), and requests is not used.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import urllib3
from pywebpush import WebPusher

from notifications.config import DeliveryConfig
from notifications.vapid import signer

log = logging.getLogger(__name__)

#: Seconds a VAPID header is signed for, and how long before its expiry a new one is signed.
VAPID_LIFETIME = 12 * 3600
VAPID_RENEW_BEFORE = 3600


@dataclass(frozen=True)
class Outcome:
    """What the push service made of one push."""

    kind: Literal["sent", "gone", "throttled", "retry", "refused"]
    detail: str = ""
    retry_after: float | None = None


class Transport(Protocol):
    def send(self, subscription_info: dict[str, Any], data: bytes, *, urgency: str, topic: str) -> Outcome: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class VapidHeaders:
    """The VAPID Authorization header per push service, signed once and reused."""

    def __init__(self, private_key: str, subject: str) -> None:
        self._vapid = signer(private_key)
        self._subject = subject
        self._cache: dict[str, tuple[dict[str, str], float]] = {}
        self._lock = threading.Lock()

    def for_endpoint(self, endpoint: str) -> dict[str, str]:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        with self._lock:
            cached = self._cache.get(audience)
            if cached is not None and cached[1] - VAPID_RENEW_BEFORE > now:
                return cached[0]
            expires = int(now) + VAPID_LIFETIME
            headers = dict(self._vapid.sign({"sub": self._subject, "aud": audience, "exp": expires}))
            self._cache[audience] = (headers, expires)
            return headers


class WebPushTransport:
    """Web Push over kept-alive connections (one transport for a process's delivery threads), VAPID headers cached."""

    def __init__(self, config: DeliveryConfig, vapid: VapidHeaders | None = None, *, connections: int = 1) -> None:
        """``connections``: kept open per push service, one for each thread that sends at once."""
        self.config = config
        self.vapid = vapid or VapidHeaders(config.private_key, config.subject)
        self._timeout = urllib3.Timeout(total=config.timeout)
        # retries=False here too: a 3xx is never followed even by a request
        # made without the arguments below.
        self._maxsize = max(1, connections)
        self._direct = urllib3.PoolManager(num_pools=50, maxsize=self._maxsize, retries=False)
        # Proxies from the environment are read once, as requests would on every push.
        self._proxies = urllib.request.getproxies()
        self._via: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def _manager(self, endpoint: str) -> urllib3.PoolManager:
        parts = urlsplit(endpoint)
        proxy = self._proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return self._direct
        with self._lock:  # work threads share the transport
            if proxy not in self._via:
                self._via[proxy] = urllib3.ProxyManager(proxy, num_pools=50, maxsize=self._maxsize, retries=False)
            return self._via[proxy]

    def send(self, subscription_info: dict[str, Any], data: bytes, *, urgency: str, topic: str) -> Outcome:
        endpoint = str(subscription_info["endpoint"])
        try:
            body = WebPusher(subscription_info).encode(data, "aes128gcm")["body"]
            headers = {
                **self.vapid.for_endpoint(endpoint),
                "Content-Encoding": "aes128gcm",
                "TTL": str(self.config.ttl),
                "Urgency": urgency,
                "Topic": topic,
            }
            # Never follow a redirect, never retry inside the request: the
            # worker decides what an answer means.
            response = self._manager(endpoint).request(
                "POST", endpoint, body=body, headers=headers, timeout=self._timeout, retries=False, redirect=False
            )
        except urllib3.exceptions.NewConnectionError as exc:  # (a subclass of the timeout, in urllib3)
            return Outcome("retry", f"network: {type(exc).__name__}: {exc}"[:300])
        except urllib3.exceptions.TimeoutError as exc:
            # Ambiguous: the service may have accepted it. Retrying risks one
            # duplicate (same Topic), giving up risks a lost badge; we retry.
            return Outcome("retry", f"timeout: {exc}"[:300])
        except urllib3.exceptions.HTTPError as exc:
            return Outcome("retry", f"network: {type(exc).__name__}: {exc}"[:300])
        except Exception as exc:
            # Not the push service's answer (say, encryption failed): retried
            # like a failure, so a row that can never go ends up dead, not looping.
            log.exception("push to %s failed before an answer", endpoint)
            return Outcome("retry", f"error: {type(exc).__name__}: {exc}"[:300])
        outcome = classify(response.status, response.headers, response.data)
        if 300 <= response.status < 400:
            # Not followed; worth a warning: a push service has no reason to
            # redirect, an endpoint pointing the server elsewhere might.
            parts = urlsplit(endpoint)
            log.warning(
                "push endpoint on %s://%s answered %s", parts.scheme, parts.netloc, outcome.detail,
                extra={"push_origin": f"{parts.scheme}://{parts.netloc}", "http_status": response.status},
            )
        return outcome

    def close(self) -> None:
        self._direct.clear()
        for manager in self._via.values():
            manager.clear()


def classify(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """What a push service's answer means for the row."""
    if status in (200, 201, 202):
        return Outcome("sent")
    detail = f"{status}: {body[:200].decode('utf-8', 'replace')}".strip()[:300]
    if 300 <= status < 400:
        # A failed attempt (backoff, counted towards the limit), never a
        # request to make: not "gone", a redirect is no sign the subscription
        # expired; not "refused" at once, a misbehaving push service may recover.
        where = "".join(c if c.isprintable() else "?" for c in headers.get("Location", "?")[:200])
        return Outcome("retry", f"{status}: redirected to {where}; push redirects are never followed")
    if status in (404, 410):
        return Outcome("gone", detail)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429:
        return Outcome("throttled", detail, retry_after)
    if status >= 500:
        return Outcome("retry", detail, retry_after)
    return Outcome("refused", detail)
