"""Sending one webhook: Standard Webhooks signatures, and a POST to the address that was checked.

Signatures are made by the ``standardwebhooks`` library (the reference
implementation of the specification), so any Standard Webhooks library
verifies them: ``webhook-id`` (the event id, the same on every retry),
``webhook-timestamp`` (the attempt's time, in seconds) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256>``; during a secret
rotation's overlap one signature per secret, space-separated).

The POST goes through urllib3 to the IP address the SSRF guard
(outbound.guard) has just resolved and checked, with the URL's name as the
``Host`` header and, for https, as the TLS SNI name and the name the
certificate must match: a DNS answer that changes between the check and the
connection cannot point the request elsewhere. Redirects are never followed
and urllib3 never retries; the worker decides what an answer means.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import urllib3
from standardwebhooks import Webhook

from outbound import guard


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt."""

    kind: Literal["delivered", "gone", "retry"]
    status: int | None = None
    detail: str = ""


def signature_headers(secrets: Sequence[str], msg_id: str, body: str, at: dt.datetime) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``: one signature per secret."""
    at = at.astimezone(dt.timezone.utc)
    signatures = " ".join(Webhook(s).sign(msg_id=msg_id, timestamp=at, data=body) for s in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signatures}


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome("delivered", status)
    if status == 410:
        return Outcome("gone", status, "410 Gone")
    if 300 <= status < 400:
        return Outcome("retry", status, f"{status}: redirects are never followed")
    return Outcome("retry", status, f"{status}")


class PinnedTransport:
    """POSTs to checked addresses, keeping one connection pool per (address, name).

    Shared by a process's delivery threads: ``connections`` is how many
    connections a pool keeps open, one per thread that may post to the same
    receiver at once (urllib3's pools are thread-safe).
    """

    def __init__(self, *, timeout: float, resolve: guard.Resolver | None = None, connections: int = 1) -> None:
        self.timeout = urllib3.Timeout(total=timeout)
        self.resolve = resolve
        self.connections = max(1, connections)
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool(self, target: guard.Target, address: str) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, address, target.port, target.host)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if target.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        address, target.port, maxsize=self.connections, retries=False, timeout=self.timeout,
                        server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(
                        address, target.port, maxsize=self.connections, retries=False, timeout=self.timeout
                    )
                self._pools[key] = pool
            return pool

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            target = guard.parse(url)
            address = guard.addresses(target, self.resolve)[0]
        except guard.WebhookUrlNotAllowed as exc:
            # DNS may change back: retried until the delivery gives up.
            return Outcome("retry", None, f"refused: {exc.detail}"[:300])
        headers = {**headers, "Host": target.host_header, "Content-Type": "application/json",
                   "User-Agent": "Parley-Webhooks/1"}
        try:
            response = self._pool(target, address).urlopen(
                "POST", target.path, body=body, headers=headers, retries=False, redirect=False,
                timeout=self.timeout, assert_same_host=False,
            )
        except urllib3.exceptions.TimeoutError as exc:
            return Outcome("retry", None, f"timeout: {exc}"[:300])
        except urllib3.exceptions.HTTPError as exc:
            return Outcome("retry", None, f"network: {type(exc).__name__}: {exc}"[:300])
        return classify(response.status)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
