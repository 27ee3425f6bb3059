"""The attachment size cap at the ASGI door: an oversized upload is refused before Django reads it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.uploadcap import UploadSizeCap

pytestmark = pytest.mark.asyncio


class Inner:
    """Stands for Django: reads the whole body, then answers 201 (unless the client went away)."""

    def __init__(self) -> None:
        self.called = False
        self.read = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # as Django does: no answer to a client that left
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def call(app: Any, *, path: str = "/api/v1/attachments", length: int | None, chunks: list[bytes]) -> list[Any]:
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[Any] = []

    async def receive() -> Any:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def status_and_code(sent: list[Any]) -> tuple[int, str | None]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], (json.loads(body).get("error", {}).get("code") if sent[0]["status"] >= 400 else None)


async def test_a_declared_length_over_the_cap_is_413_and_the_body_is_never_read(settings):
    settings.PARLEY_MAX_ATTACHMENT_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000, 100
    inner = Inner()
    sent = await call(UploadSizeCap(inner), length=1101, chunks=[b"x" * 1101])
    assert status_and_code(sent) == (413, "attachment_too_large")
    assert not inner.called


async def test_a_chunked_body_is_cut_off_when_it_passes_the_cap(settings):
    settings.PARLEY_MAX_ATTACHMENT_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000, 100
    inner = Inner()
    sent = await call(UploadSizeCap(inner), length=None, chunks=[b"x" * 600, b"x" * 600, b"x" * 600])
    assert status_and_code(sent) == (413, "attachment_too_large")
    assert inner.read == 600  # the chunk that passed the cap never reached it


async def test_uploads_within_the_cap_and_other_routes_pass_through(settings):
    settings.PARLEY_MAX_ATTACHMENT_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000, 100
    assert status_and_code(await call(UploadSizeCap(Inner()), length=1100, chunks=[b"x" * 1100])) == (201, None)
    other = await call(UploadSizeCap(Inner()), path="/api/v1/messages", length=5000, chunks=[b"x" * 5000])
    assert status_and_code(other) == (201, None)
