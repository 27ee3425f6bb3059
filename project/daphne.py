"""How Daphne treats websocket frames that break the protocol, and request bodies.

Daphne's autobahn factory fails a connection on a protocol error (a text
frame that is not UTF-8, a message over Daphne's 1 MiB limit) by dropping
the TCP connection, which a client sees as a reset. autobahn can instead
close with the status the protocol defines (1007 invalid payload, 1009 too
big), which tells the client why. Daphne does not expose the option, and
``daphne project.asgi:application`` builds its factory after importing this
application, so the factory class is adjusted here, once.

Request bodies: Twisted, under Daphne, parses every POST with a form or
multipart body into its own ``request.args`` before Daphne runs, which
Daphne never reads (it hands the raw body to Django). For an attachment
upload that is a second full copy of the file in memory, and a multipart
body Twisted cannot parse is answered with an empty 400 that Parley never
sees, not the API's error shape. ``leave_bodies_to_django`` turns that
parsing off (Twisted's ``parsePOSTFormSubmission``), so Django alone
parses bodies, with its limits and its errors.

Reason phrases: Daphne passes only the status to Twisted, whose table of
phrases stops at 1999's codes, so a 429 went out as ``429 Unknown Status``.
``name_every_status`` adds the phrase of every status Python's
``http.HTTPStatus`` knows (the ones Django uses) that Twisted's table lacks.

Send buffers: Daphne hands each frame the application sends straight to
Twisted, which keeps what the client has not read yet in memory, without
limit: a socket that never reads, fed frames, grows the process until it
closes (measured: 40 such sockets, 607 -> 822 MB in 50 s). ``bound_send_buffers``
checks the connection's unsent bytes before each frame; past
``PARLEY_SOCKET_SEND_BUFFER_BYTES`` the frame is not queued and the socket is
closed with 4000 (reconnect and resume: the log has every frame it missed).
A client that does not read the close either is cut off by autobahn after
its close-handshake timeout, which frees the buffer. The application sees
the unsent bytes too (``send_buffer_bytes`` in the scope's ``extensions``),
so a resume that replays the log waits for a slow reader instead of
overflowing it.

Access log: Daphne writes each request line, query string included, to its
access log (on by default), and ``/chat/?token=``, the socket's ``?token=``
and the signed token that is a path segment of an email's links
(``/email/unsubscribe/<token>/``, ``/email/verify/<token>/``) are
credentials. ``redact_access_log`` replaces every query value and those
path segments with ``…`` before the line is written, so no token or signed
link reaches a log file.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

#: A query parameter's value: from ``=`` to the next ``&``, ``#``, space or quote.
_QUERY_VALUE = re.compile(r"=[^&#\s\"]*")
#: A path segment that is a credential: the signed token of an email's unsubscribe or verify link
#: (web/urls.py; tests/unit/test_access_log_redaction.py fails for a new route with a token in its path).
_PATH_TOKEN = re.compile(r"(/email/(?:unsubscribe|verify)/)[^/?#\s\"]+")


#: The websocket close code for "reconnect and resume" (realtime.consumers.CLOSE_RESUME).
CLOSE_RESUME = 4000


def unsent_bytes(protocol: Any) -> int:
    """Bytes a connection's Twisted transport holds that the client has not taken yet."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return 0
    buffered = len(getattr(transport, "dataBuffer", b"")) - int(getattr(transport, "offset", 0))
    return max(0, buffered) + int(getattr(transport, "_tempDataLen", 0))


def bound_send_buffers(limit: int) -> None:
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not running under Daphne
        return
    if getattr(WebSocketProtocol, "_parley_bounded", False):
        return
    original_send = WebSocketProtocol.serverSend
    original_create = Server.create_application

    def serverSend(self: Any, content: Any, binary: bool = False) -> None:
        if getattr(self, "_parley_overflowed", False):
            return  # closing already: nothing more is queued
        if self.state == self.STATE_OPEN and unsent_bytes(self) > limit:
            self._parley_overflowed = True
            import logging

            logging.getLogger("realtime.consumers").warning(
                "websocket send buffer over %d bytes (the client does not read): closed with %d", limit, CLOSE_RESUME)
            self.serverClose(code=CLOSE_RESUME)
            return
        original_send(self, content, binary)

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") == "websocket":
            import weakref

            ref = weakref.ref(protocol)
            scope.setdefault("extensions", {})["parley.send_buffer"] = {
                "unsent": lambda: unsent_bytes(ref()) if ref() is not None else 0, "limit": limit,
            }
        return original_create(self, protocol, scope)

    WebSocketProtocol.serverSend = serverSend  # type: ignore[method-assign]
    Server.create_application = create_application  # type: ignore[method-assign]
    WebSocketProtocol._parley_bounded = True  # type: ignore[attr-defined]


def redact(request_line: str) -> str:
    """The request line with every query value and every token in its path replaced
    (``GET /chat/?token=…``, ``GET /email/unsubscribe/…/``)."""
    path, mark, query = request_line.partition("?")
    path = _PATH_TOKEN.sub(r"\1…", path)
    return path + mark + _QUERY_VALUE.sub("=…", query) if mark else path


def redact_access_log() -> None:
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # not running under Daphne
        return
    if getattr(AccessLogGenerator, "_parley_redacted", False):
        return
    original = AccessLogGenerator.write_entry

    def write_entry(self: Any, host: Any, date: Any, request: str, *args: Any, **kwargs: Any) -> None:
        original(self, host, date, redact(request), *args, **kwargs)

    AccessLogGenerator.write_entry = write_entry  # type: ignore[method-assign]
    AccessLogGenerator._parley_redacted = True  # type: ignore[attr-defined]


def close_bad_frames_cleanly() -> None:
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:  # not running under Daphne
        return
    if getattr(WebSocketFactory, "_parley_clean_close", False):
        return
    original = WebSocketFactory.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = __init__  # type: ignore[method-assign]
    WebSocketFactory._parley_clean_close = True  # type: ignore[attr-defined]


def leave_bodies_to_django() -> None:
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # not running under Daphne
        return
    if getattr(WebRequest, "_parley_raw_bodies", False):
        return
    original = WebRequest.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    WebRequest.__init__ = __init__  # type: ignore[method-assign]
    WebRequest._parley_raw_bodies = True  # type: ignore[attr-defined]


def name_every_status() -> None:
    try:
        from twisted.web import http
    except ImportError:  # not running under Daphne
        return
    for status in HTTPStatus:
        http.RESPONSES.setdefault(status.value, status.phrase.encode("ascii"))
