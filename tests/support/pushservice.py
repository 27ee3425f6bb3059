"""A real, local Web Push service for tests (the receiving side).

``PushService`` runs an HTTP server on 127.0.0.1 that behaves like the push
service a browser subscribes to (FCM, Mozilla autopush, ...).  It hands out
subscriptions in the exact shape of the browser's ``PushSubscription.toJSON()``
and accepts push messages on ``POST /push/{id}``.  Nothing is mocked: a message
is only recorded as a ``Delivery`` when the application server really did what
the RFCs require.  Each request is checked in this order:

1. ``404`` -- the subscription id is unknown.
2. ``401`` -- RFC 8292 (VAPID) authentication.  The ``Authorization`` header
   must be ``vapid t=<JWT>, k=<public key>``; ``k`` must be an uncompressed
   P-256 point (base64url); the JWT must be ES256 with the 64-byte raw
   ``r || s`` signature of RFC 7518 (a DER signature is rejected) and verify
   with ``k``; ``aud`` must equal this service's origin
   (``http://127.0.0.1:PORT``); ``exp`` must be in the future and at most 24 h
   ahead; ``sub`` must start with ``mailto:`` or ``https:``.
3. ``403`` -- the service (``expected_vapid_key``) or the subscription
   (``application_server_key``, like ``PushManager.subscribe()``'s
   ``applicationServerKey``) is bound to a different VAPID key.
4. ``400`` -- RFC 8030 headers: ``TTL`` is required and must be a non-negative
   integer; ``Urgency``, if present, is one of very-low/low/normal/high;
   ``Topic``, if present, is 1-32 characters of the base64url alphabet.
5. ``415`` -- a payload must be sent with ``Content-Encoding: aes128gcm``
   (RFC 8291; the legacy ``aesgcm`` is refused).  A push with an empty body and
   no ``Content-Encoding`` is a valid payload-less push (RFC 8030 §5).
6. ``413`` -- the encrypted body is larger than 4096 bytes (so the largest
   plaintext that fits is 3993 bytes: 86-byte header + 1 delimiter + 16 tag).
7. ``400`` -- the body is not a single aes128gcm record (RFC 8188/8291 §4) that
   decrypts with the subscription's private key and auth secret.
8. Scripted failures (``Subscription.fail_next``/``Subscription.gone``) -- only
   a request that passed every check above consumes one, and it is answered
   *instead of* recording a delivery.  A malformed request never silently eats
   a scripted failure.
9. ``201 Created`` with a ``Location`` header, and a ``Delivery`` is recorded.

Every request is counted (``PushService.requests``) and every refusal is kept
(``PushService.rejections()``) with the reason, which ``wait_for`` includes in
its ``TimeoutError`` message.  ``delay`` makes the service sleep after reading a
request and before processing it; ``hold`` (an event) holds the requests from the
``hold_from``-th on until it is set. The message is still processed and recorded
after the sleep or the hold even if the client has gone away, as a real push
service would.

The module has no Django dependency.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Mapping
from urllib.parse import urlsplit

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_PLAINTEXT_SIZE",
    "Delivery",
    "PushService",
    "Rejection",
    "Subscription",
    "b64url_decode",
    "b64url_encode",
]

#: Largest encrypted body accepted (RFC 8030 §7.2 minimum, what FCM/autopush use).
MAX_MESSAGE_SIZE = 4096
#: aes128gcm header (salt 16 + rs 4 + idlen 1 + keyid 65) + delimiter 1 + tag 16.
_AES128GCM_OVERHEAD = 86 + 1 + 16
#: Largest plaintext that fits into ``MAX_MESSAGE_SIZE`` as a single record.
MAX_PLAINTEXT_SIZE = MAX_MESSAGE_SIZE - _AES128GCM_OVERHEAD
#: RFC 8292 §2: ``exp`` MUST NOT be more than 24 hours from the time of the request.
MAX_VAPID_LIFETIME = 24 * 60 * 60
URGENCIES = ("very-low", "low", "normal", "high")

_B64URL = re.compile(r"[A-Za-z0-9_-]*=*")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TTL = re.compile(r"[0-9]+")
_PUSH_PATH = re.compile(r"/push/(?P<id>[A-Za-z0-9_-]+)")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as used by Web Push and JWS."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url (padding optional); raise ``ValueError`` on anything else."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public_key(key: str | bytes | ec.EllipticCurvePublicKey) -> bytes:
    """Normalise a P-256 public key to its 65-byte uncompressed encoding."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    raw = b64url_decode(key) if isinstance(key, str) else bytes(key)
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # validates
    if len(raw) != 65:
        raise ValueError("expected an uncompressed P-256 point")
    return raw


@dataclass(frozen=True)
class Delivery:
    """A push message the service accepted (answered ``201``)."""

    subscription_id: str
    message_id: str
    payload: bytes
    ttl: int
    urgency: str | None
    topic: str | None
    received_at: float
    vapid_key: str
    vapid_claims: Mapping[str, Any]
    headers: Mapping[str, str] = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.payload)

    def text(self) -> str:
        return self.payload.decode("utf-8")


@dataclass(frozen=True)
class Rejection:
    """A request the service refused, and why."""

    subscription_id: str | None
    status: int
    reason: str


@dataclass(frozen=True)
class _Scripted:
    status: int
    retry_after: str | None
    location: str | None = None


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Refused(Exception):
    def __init__(
        self, status: int, reason: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})

    def response(self) -> _Response:
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Error"
        body = json.dumps(
            {"code": self.status, "error": phrase, "message": self.reason}
        ).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        return _Response(self.status, headers, body)


def _unauthorized(reason: str) -> _Refused:
    return _Refused(401, reason, {"WWW-Authenticate": "vapid"})


class Subscription:
    """One push subscription: the browser's key pair and auth secret."""

    def __init__(
        self,
        service: PushService,
        subscription_id: str,
        private_key: ec.EllipticCurvePrivateKey,
        auth_secret: bytes,
        application_server_key: bytes | None = None,
    ) -> None:
        self._service = service
        self.id = subscription_id
        self.private_key = private_key
        self.auth_secret = auth_secret
        self.application_server_key = application_server_key

    @property
    def endpoint(self) -> str:
        return f"{self._service.base_url}/push/{self.id}"

    @property
    def p256dh(self) -> str:
        return b64url_encode(_raw_public_key(self.private_key.public_key()))

    @property
    def auth(self) -> str:
        return b64url_encode(self.auth_secret)

    def to_json(self) -> dict[str, Any]:
        """The browser's ``PushSubscription.toJSON()`` shape."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }

    def fail_next(
        self, status: int, times: int = 1, retry_after: int | str | None = None
    ) -> None:
        """Answer the next ``times`` valid pushes with ``status`` instead of delivering.

        ``retry_after`` (seconds or an HTTP date) is sent as ``Retry-After``.
        """
        self._service._script(self.id, status, times, retry_after)

    def redirect_next(self, location: str, status: int = 307) -> None:
        """Answer the next valid push with a redirect to ``location`` (an SSRF attempt)."""
        with self._service._cond:
            self._service._scripted.setdefault(self.id, deque()).append(_Scripted(status, None, location))

    def gone(self) -> None:
        """From now on answer every valid push with ``410 Gone`` (unsubscribed)."""
        self._service._mark_gone(self.id)

    def deliveries(self) -> list[Delivery]:
        return self._service.deliveries(self.id)

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.endpoint}>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: PushService


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "ParleyTestPushService/1.0"
    timeout = 30  # never let a stuck client pin a handler thread forever

    def do_POST(self) -> None:
        service = self.server.service
        try:
            body = self._read_body()
        except _Refused as refused:
            self._send(refused.response())
            return
        index = service._note_request()
        if service.delay > 0:
            time.sleep(service.delay)
        if service.hold is not None and index >= service.hold_from:
            service.hold.wait(self.timeout)
        self._send(service._process(self.path, self.headers, body))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _Refused(411, "chunked bodies are not supported; send Content-Length")
        length_text = self.headers.get("Content-Length", "0").strip()
        if not _TTL.fullmatch(length_text):
            raise _Refused(400, "invalid Content-Length")
        return self.rfile.read(int(length_text))

    def _send(self, response: _Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if not self.server.service.keep_alive:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the sender went away (e.g. a killed worker); the outcome stands
            return
        self.close_connection = not self.server.service.keep_alive

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PushService:
    """A local RFC 8030/8291/8292 push service; use as a context manager."""

    def __init__(
        self,
        *,
        expected_vapid_key: str | bytes | ec.EllipticCurvePublicKey | None = None,
        delay: float = 0.0,
        host: str = "127.0.0.1",
        keep_alive: bool = False,
    ) -> None:
        self.expected_vapid_key = (
            None if expected_vapid_key is None else _raw_public_key(expected_vapid_key)
        )
        #: Seconds to sleep after reading each request, before processing it.
        self.delay = delay
        #: When set (an unset event), the requests from the ``hold_from``-th on wait for it.
        self.hold: threading.Event | None = None
        self.hold_from = 1
        #: Keep connections open between pushes, as real push services do
        #: (off by default: each test push then starts on a fresh connection).
        self.keep_alive = keep_alive
        self._host = host
        self._port: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._subscriptions: dict[str, Subscription] = {}
        self._scripted: dict[str, deque[_Scripted]] = {}
        self._gone: set[str] = set()
        self._deliveries: list[Delivery] = []
        self._rejections: list[Rejection] = []
        self._requests = 0

    # -- lifecycle -------------------------------------------------------

    def start(self) -> PushService:
        if self._server is not None or self._port is not None:
            raise RuntimeError("PushService can only be started once")
        server = _Server((self._host, 0), _Handler)
        server.service = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"PushService:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PushService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The origin, e.g. ``http://127.0.0.1:54321`` (also the required VAPID ``aud``)."""
        if self._port is None:
            raise RuntimeError("PushService is not started")
        return f"http://{self._host}:{self._port}"

    # -- subscriptions ---------------------------------------------------

    def new_subscription(
        self,
        application_server_key: str | bytes | ec.EllipticCurvePublicKey | None = None,
    ) -> Subscription:
        """Create a subscription like ``PushManager.subscribe()`` would.

        ``application_server_key`` binds it to one VAPID key (others get 403).
        """
        bound = (
            None
            if application_server_key is None
            else _raw_public_key(application_server_key)
        )
        subscription = Subscription(
            self,
            secrets.token_urlsafe(16),
            ec.generate_private_key(ec.SECP256R1()),
            secrets.token_bytes(16),
            bound,
        )
        with self._cond:
            self._subscriptions[subscription.id] = subscription
        return subscription

    def _script(
        self, subscription_id: str, status: int, times: int, retry_after: int | str | None
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError("a scripted failure needs a 4xx or 5xx status")
        if times < 1:
            raise ValueError("times must be at least 1")
        entry = _Scripted(status, None if retry_after is None else str(retry_after))
        with self._cond:
            self._scripted.setdefault(subscription_id, deque()).extend([entry] * times)

    def _mark_gone(self, subscription_id: str) -> None:
        with self._cond:
            self._gone.add(subscription_id)

    # -- accessors -------------------------------------------------------

    @property
    def requests(self) -> int:
        """Number of POSTs received, including refused ones."""
        with self._cond:
            return self._requests

    def deliveries(self, subscription_id: str | None = None) -> list[Delivery]:
        """Accepted messages in arrival order, optionally for one subscription."""
        with self._cond:
            return self._matching(subscription_id)

    def rejections(self, subscription_id: str | None = None) -> list[Rejection]:
        """Refused requests (including scripted failures) in arrival order."""
        with self._cond:
            return [
                r
                for r in self._rejections
                if subscription_id is None or r.subscription_id == subscription_id
            ]

    def wait_for(
        self, count: int, timeout: float = 5.0, subscription_id: str | None = None
    ) -> list[Delivery]:
        """Block until at least ``count`` deliveries exist; return all of them.

        Raises ``TimeoutError`` (listing recent rejections) if they don't arrive.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._matching(subscription_id)
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} deliveries"
                        f"{'' if subscription_id is None else f' to {subscription_id}'}"
                        f" within {timeout}s, got {len(found)};"
                        f" {self._requests} requests, recent rejections:"
                        f" {self._rejections[-5:]!r}"
                    )
                self._cond.wait(remaining)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> int:
        """Block until at least ``count`` POSTs have arrived (e.g. a send is in flight)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._requests < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} requests within {timeout}s, got {self._requests}"
                    )
                self._cond.wait(remaining)
            return self._requests

    def _matching(self, subscription_id: str | None) -> list[Delivery]:
        return [
            d
            for d in self._deliveries
            if subscription_id is None or d.subscription_id == subscription_id
        ]

    # -- request processing ----------------------------------------------

    def _note_request(self) -> int:
        """Count a request; its number (the first is 1)."""
        with self._cond:
            self._requests += 1
            self._cond.notify_all()
            return self._requests

    def _process(self, path: str, headers: Message, body: bytes) -> _Response:
        subscription_id: str | None = None
        try:
            match = _PUSH_PATH.fullmatch(urlsplit(path).path)
            if match is None:
                raise _Refused(404, f"no push resource at {path}")
            subscription_id = match["id"]
            with self._cond:
                subscription = self._subscriptions.get(subscription_id)
            if subscription is None:
                raise _Refused(404, f"unknown subscription {subscription_id}")
            claims, vapid_key = self._authenticate(headers)
            self._check_key_binding(subscription, vapid_key)
            ttl, urgency, topic = self._parse_push_headers(headers)
            payload = self._decrypt(subscription, headers, body)
            self._take_scripted_failure(subscription_id)
        except _Refused as refused:
            with self._cond:
                self._rejections.append(
                    Rejection(subscription_id, refused.status, refused.reason)
                )
                self._cond.notify_all()
            return refused.response()

        delivery = Delivery(
            subscription_id=subscription_id,
            message_id=uuid.uuid4().hex,
            payload=payload,
            ttl=ttl,
            urgency=urgency,
            topic=topic,
            received_at=time.time(),
            vapid_key=b64url_encode(vapid_key),
            vapid_claims=MappingProxyType(claims),
            headers=MappingProxyType({k.lower(): v for k, v in headers.items()}),
        )
        with self._cond:
            self._deliveries.append(delivery)
            self._cond.notify_all()
        location = f"{self.base_url}/m/{delivery.message_id}"
        return _Response(201, {"Location": location, "TTL": str(ttl)})

    def _authenticate(self, headers: Message) -> tuple[dict[str, Any], bytes]:
        """RFC 8292 §3: verify ``Authorization: vapid t=<JWT>, k=<key>``."""
        value = headers.get("Authorization")
        if not value:
            raise _unauthorized("missing Authorization header")
        scheme, _, params = value.strip().partition(" ")
        if scheme.lower() != "vapid":
            raise _unauthorized(f"Authorization scheme must be 'vapid', got {scheme!r}")
        fields: dict[str, str] = {}
        for param in params.split(","):
            name, sep, param_value = param.strip().partition("=")
            if not sep:
                raise _unauthorized(f"malformed Authorization parameter {param!r}")
            fields[name.strip().lower()] = param_value.strip().strip('"')
        token, key_text = fields.get("t"), fields.get("k")
        if not token or not key_text:
            raise _unauthorized("Authorization needs both t= and k=")

        try:
            raw_key = b64url_decode(key_text)
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), raw_key
            )
        except ValueError:
            raise _unauthorized("k is not a base64url P-256 public key") from None
        if len(raw_key) != 65:
            raise _unauthorized("k must be an uncompressed P-256 point (65 bytes)")

        claims = self._verify_jwt(token, public_key)
        aud = claims.get("aud")
        if aud != self.base_url:
            raise _unauthorized(f"aud {aud!r} is not this push service ({self.base_url})")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise _unauthorized("exp claim missing or not a number")
        now = time.time()
        if exp <= now:
            raise _unauthorized(f"JWT expired {now - exp:.0f}s ago")
        if exp > now + MAX_VAPID_LIFETIME:
            raise _unauthorized("exp is more than 24 hours in the future")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
            raise _unauthorized(f"sub must be a mailto: or https: URI, got {sub!r}")
        return claims, raw_key

    @staticmethod
    def _verify_jwt(token: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
        """Verify an ES256 JWS (RFC 7515 compact form, RFC 7518 §3.4 signature)."""
        parts = token.split(".")
        if len(parts) != 3:
            raise _unauthorized("t is not a compact JWT")
        header_b64, claims_b64, signature_b64 = parts
        try:
            header = json.loads(b64url_decode(header_b64))
            claims = json.loads(b64url_decode(claims_b64))
            signature = b64url_decode(signature_b64)
        except ValueError:  # includes JSON and UTF-8 errors
            raise _unauthorized("t is not a well-formed JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "ES256":
            raise _unauthorized("JWT alg must be ES256")
        if not isinstance(claims, dict):
            raise _unauthorized("JWT claims must be a JSON object")
        if len(signature) != 64:
            raise _unauthorized(
                "JWT signature must be the 64-byte r||s form (RFC 7518 §3.4), not DER"
            )
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            public_key.verify(
                der,
                f"{header_b64}.{claims_b64}".encode("ascii"),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature:
            raise _unauthorized("JWT signature does not verify with k") from None
        return claims

    def _check_key_binding(self, subscription: Subscription, vapid_key: bytes) -> None:
        expected = subscription.application_server_key or self.expected_vapid_key
        if expected is not None and vapid_key != expected:
            raise _Refused(403, "VAPID key does not match the subscription's key")

    @staticmethod
    def _parse_push_headers(
        headers: Message,
    ) -> tuple[int, str | None, str | None]:
        """RFC 8030 §5.2-5.4: TTL (required), Urgency and Topic."""
        ttl_text = headers.get("TTL")
        if ttl_text is None:
            raise _Refused(400, "missing TTL header")
        if not _TTL.fullmatch(ttl_text.strip()):
            raise _Refused(400, f"TTL must be a non-negative integer, got {ttl_text!r}")
        urgency = headers.get("Urgency")
        if urgency is not None and urgency.strip().lower() not in URGENCIES:
            raise _Refused(400, f"Urgency must be one of {URGENCIES}, got {urgency!r}")
        topic = headers.get("Topic")
        if topic is not None and not _TOPIC.fullmatch(topic):
            raise _Refused(
                400, f"Topic must be 1-32 base64url characters, got {topic!r}"
            )
        return (
            int(ttl_text.strip()),
            None if urgency is None else urgency.strip().lower(),
            topic,
        )

    @staticmethod
    def _decrypt(
        subscription: Subscription, headers: Message, body: bytes
    ) -> bytes:
        """RFC 8291: decrypt a single aes128gcm record as the user agent would."""
        encoding = headers.get("Content-Encoding")
        if not body and encoding is None:
            return b""  # a push message without payload
        if (encoding or "").strip().lower() != "aes128gcm":
            raise _Refused(415, f"Content-Encoding must be aes128gcm, got {encoding!r}")
        if len(body) > MAX_MESSAGE_SIZE:
            raise _Refused(
                413, f"body of {len(body)} bytes exceeds {MAX_MESSAGE_SIZE} bytes"
            )
        if len(body) < 21:
            raise _Refused(400, "body too short for an aes128gcm header")
        (record_size,) = struct.unpack("!I", body[16:20])
        keyid_length = body[20]
        if keyid_length != 65 or body[21:22] != b"\x04":
            raise _Refused(
                400, "aes128gcm keyid must be the sender's 65-byte P-256 key (RFC 8291 §4)"
            )
        if len(body) - (21 + keyid_length) > record_size:
            raise _Refused(400, "push message must be a single aes128gcm record")
        try:
            return http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=subscription.auth_secret,
                version="aes128gcm",
            )
        except Exception as exc:  # ECEException, ValueError, InvalidTag...
            raise _Refused(400, f"could not decrypt payload: {exc}") from None

    def _take_scripted_failure(self, subscription_id: str) -> None:
        with self._cond:
            if subscription_id in self._gone:
                raise _Refused(410, "subscription has expired or was unsubscribed")
            queue = self._scripted.get(subscription_id)
            scripted = queue.popleft() if queue else None
        if scripted is not None:
            extra = {} if scripted.retry_after is None else {"Retry-After": scripted.retry_after}
            if scripted.location is not None:
                extra["Location"] = scripted.location
            raise _Refused(scripted.status, "scripted failure", extra)
