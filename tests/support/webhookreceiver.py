"""A real local webhook receiver: a threading http.server that verifies every
request with the ``standardwebhooks`` library, as a receiver would.

``fail_first`` makes the first attempts of each webhook-id answer 500;
``status`` answers every request with that status instead; ``delay`` holds
each request open, and ``hold`` (an event) until it is set (the requests
from the ``hold_from``-th on; from the first unless said). Every request
is recorded (id, verified body or the verification error), in arrival
order; ``at_once`` is the number of requests it holds now, ``most_at_once``
the largest number it held at the same time. It speaks HTTP/1.1 and keeps
connections open between requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: dict[str, Any] | None  # verified JSON, None when verification failed
    error: str
    answered: int


class WebhookReceiver:
    def __init__(self, secret: str = "", *, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.status: int | None = None
        self.delay = 0.0
        self.hold: threading.Event | None = None
        self.hold_from = 1  # the first request ``hold`` holds (counted from 1, in arrival order)
        self.requests: list[Received] = []
        self.arrived_at: list[float] = []  # when each request's body was read, before any delay (time.monotonic())
        self.at_once = 0  # requests being answered now
        self.most_at_once = 0
        self._tries: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Connections stay open between requests, as a real receiver's do:
            # what a sender gains by reusing them is measured, not hidden.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.arrived_at.append(time.monotonic())
                    index = len(receiver.arrived_at)
                    receiver.at_once += 1
                    receiver.most_at_once = max(receiver.most_at_once, receiver.at_once)
                try:
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    if receiver.hold is not None and index >= receiver.hold_from:
                        receiver.hold.wait()
                    status = receiver._answer(raw, headers)
                finally:
                    with receiver._lock:
                        receiver.at_once -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting (its timeout) and closed the connection

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def arrived(self) -> int:
        """Requests whose body was read, before any delay."""
        return len(self.arrived_at)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}/hooks/parley"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, raw: bytes, headers: dict[str, str]) -> int:
        body, error = None, ""
        try:
            body = Webhook(self.secret).verify(raw, headers)
        except (WebhookVerificationError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        wid = headers.get("webhook-id", "")
        with self._lock:
            self._tries[wid] += 1
            if self.status is not None:
                status = self.status
            elif error:
                status = 401
            else:
                status = 500 if self._tries[wid] <= self.fail_first else 204
            self.requests.append(Received(wid, headers, body, error, status))
            self._changed.notify_all()
        return status

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def wait_for_accepted(self, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len([r for r in self.requests if 200 <= r.answered < 300]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} accepted webhooks expected; got {json.dumps([r.webhook_id for r in self.requests])}")
                self._changed.wait(left)
        return self.accepted()
