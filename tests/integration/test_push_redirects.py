"""Push delivery never follows a redirect (SSRF), and a 3xx is a failed attempt.

A push endpoint on an allowed host whose service answers 3xx with a
``Location`` pointing somewhere else (an internal address, say) must not make
the server send anything there: not the encrypted POST (307/308), not a GET
(302/303, which some clients turn the POST into). The push did not reach the
device, so the row is not ``sent``; a redirect is no sign the subscription
expired (that is 404/410), so it is a failed attempt: counted towards
``PUSH_MAX_FAILURES``, the device held for a backoff, and logged.

Two real local HTTP servers: the push service (``tests.support.pushservice``,
which checks VAPID and decrypts before it answers the scripted redirect) and a
recorder standing for the internal address, which records any request of any
method and would accept it with 201 (so a followed redirect would look like a
delivered push).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notifications.config import DeliveryConfig
from notifications.models import DeliveryState, PushDelivery, PushSubscription
from notifications.transport import WebPushTransport
from notifications.vapid import VapidKeys
from tests.integration.test_push_support import (
    Clock,
    agent_says,
    make_worker,
    push,  # noqa: F401  (fixture)
    run_pipeline,
    subscribe,
    vapid_keys,  # noqa: F401  (fixture)
)
from tests.support.pushservice import PushService

pytestmark = pytest.mark.django_db(transaction=True)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]
    lock: threading.Lock
    #: None: record and answer 201 (the recorder); a status: answer it with a Location (the redirector).
    redirect_status: int | None
    location: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.seen.append(Seen(self.command, self.path, body))
        if self.server.redirect_status is None:
            self.send_response(201)
            self.send_header("Location", "/m/accepted")
        else:
            self.send_response(self.server.redirect_status)
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


for _method in METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._any)


class LocalServer:
    """An HTTP server on a spare port of 127.0.0.1 that records every request."""

    def __init__(self, redirect_status: int | None = None, location: str = "") -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.seen, self._server.lock = [], threading.Lock()
        self._server.redirect_status, self._server.location = redirect_status, location
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[Seen]:
        with self._server.lock:
            return list(self._server.seen)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def internal() -> Iterator[LocalServer]:
    """Where the redirects point: an 'internal' service that must never hear from us."""
    server = LocalServer()
    yield server
    server.close()


def _hold_seconds(device_id: str, clock: Clock) -> float:
    hold = PushSubscription.objects.get(pk=device_id).hold_until
    assert hold is not None, "the device is not held after a failed attempt"
    return (hold - clock.now).total_seconds()


@pytest.mark.parametrize("status", [307, 302])
def test_a_redirect_is_not_followed_and_is_a_failed_attempt_with_backoff(
    push, vapid_keys, customer, agent, internal, caplog, status
):
    device = subscribe(push, customer, vapid_keys)
    device.push.redirect_next(f"{internal.base_url}/latest/meta-data/", status=status)
    clock = Clock()
    worker = make_worker(clock, backoff_base=10.0)
    agent_says(agent, customer, f"answered with {status}")
    run_pipeline()

    with caplog.at_level(logging.WARNING, logger="notifications"):
        worker.drain()

    assert internal.seen == []  # neither the POST nor a GET went to the redirect's target
    assert push.requests == 1  # the one push to the endpoint, nothing more
    row = PushDelivery.objects.get()
    assert row.state == DeliveryState.PENDING  # not sent, not given up after one answer
    assert (row.attempts, row.failures) == (1, 1)
    assert f"{status}" in row.reason and "redirect" in row.reason and internal.base_url in row.reason
    # Not "gone": the subscription stays, held for a backoff like any failure
    # (base 10 s: 5-10 s after the first failure).
    assert 4 <= _hold_seconds(device.subscription_id, clock) <= 10
    [record] = [r for r in caplog.records if "redirect" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert str(status) in record.getMessage() and internal.base_url in record.getMessage()

    worker.drain()  # held: nothing is sent before the backoff is over
    assert push.requests == 1

    clock.advance(3600)
    worker.drain()  # the service answers properly now: delivered once
    assert [p["message"]["preview"] for p in device.payloads()] == [f"answered with {status}"]
    row.refresh_from_db()
    assert (row.state, row.attempts, row.failures) == (DeliveryState.SENT, 2, 1)
    assert internal.seen == []


def test_redirects_count_towards_the_failure_limit_then_the_row_is_dead_and_the_device_goes_on(
    push, vapid_keys, customer, agent, internal
):
    device = subscribe(push, customer, vapid_keys)
    for status in (307, 302, 308):
        device.push.redirect_next(f"{internal.base_url}/admin", status=status)
    clock = Clock()
    worker = make_worker(clock, max_failures=3, backoff_base=1.0)
    agent_says(agent, customer, "never delivered")
    run_pipeline()
    for _ in range(5):
        worker.drain()
        clock.advance(3600)

    row = PushDelivery.objects.get()
    assert row.state == DeliveryState.DEAD
    assert (row.attempts, row.failures) == (3, 3)
    assert "3 failures" in row.reason and "308" in row.reason and "redirect" in row.reason
    assert push.requests == 3
    assert internal.seen == []
    assert device.payloads() == []
    # The subscription is still there and works: the next message goes out.
    agent_says(agent, customer, "delivered")
    run_pipeline()
    worker.drain()
    assert [p["message"]["preview"] for p in device.payloads()] == ["delivered"]


def _subscription_info(service: PushService) -> dict[str, object]:
    return service.new_subscription().to_json()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "via-proxy"])
def test_the_transport_never_follows_a_redirect_and_calls_it_a_failure(
    vapid_keys: VapidKeys, internal, monkeypatch, status, via_proxy
):
    """The transport itself, directly and through an HTTP proxy from the
    environment (urllib3's ProxyManager), against a server answering ``status``."""
    redirector = LocalServer(redirect_status=status, location=f"{internal.base_url}/internal")
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    if via_proxy:
        # The "proxy" answers the redirect itself, as a proxy relaying one would.
        monkeypatch.setenv("http_proxy", redirector.base_url)
    try:
        with PushService() as endpoint_host:
            info = _subscription_info(endpoint_host)
            if not via_proxy:
                info["endpoint"] = f"{redirector.base_url}/push/abc"
            transport = WebPushTransport(DeliveryConfig.from_settings(timeout=5.0, lease_seconds=30.0))
            try:
                outcome = transport.send(info, b'{"type": "badge"}', urgency="high", topic="t")
            finally:
                transport.close()
            assert endpoint_host.requests == 0
        assert [s.method for s in redirector.seen] == ["POST"]
        assert internal.seen == []
        assert outcome.kind == "retry"  # a failed attempt: backoff, counted towards the limit
        assert str(status) in outcome.detail and internal.base_url in outcome.detail
        assert outcome.retry_after is None
    finally:
        redirector.close()

