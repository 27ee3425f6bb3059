"""The upload size cap at the ASGI door, before Django reads the body.

Django's ASGI handler reads a whole request body (spooling it to a
temporary file) before any view or upload handler runs, so a cap enforced
only while the multipart body is parsed (attachments.uploads) would still
let a client make the server store gigabytes first. This middleware stands
in front of Django for the upload route: a declared Content-Length over the
cap is answered 413 at once, without reading the body; a body without one
(chunked) is counted as it arrives, and past the cap Django is told the
client went away and the client gets the same 413.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[Any]]

UPLOAD_PATH = "/api/v1/attachments"


def _limit() -> int:
    # The file itself plus the multipart envelope and the fields beside it.
    return int(settings.PARLEY_MAX_ATTACHMENT_BYTES) + int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send) -> None:
    body = json.dumps({"error": {"code": "attachment_too_large",
                                 "detail": f"attachments are limited to {settings.PARLEY_MAX_ATTACHMENT_BYTES} bytes"}})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body.encode()})


class UploadSizeCap:
    def __init__(self, app: ASGIApp, path: str = UPLOAD_PATH) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        limit = _limit()
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send)
            return
        received, exceeded, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted, tracked)
        if exceeded and not started:
            await _refuse(send)
