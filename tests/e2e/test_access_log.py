"""Daphne's access log (on by default) never holds a token: query values are redacted."""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.error
import urllib.request

import pytest
import websockets

from tests.e2e.conftest import Stack, _start, free_port

pytestmark = pytest.mark.e2e


def test_tokens_in_links_and_socket_urls_never_reach_daphnes_access_log(stack: Stack):
    port = free_port()
    _start(stack, "daphne-logged", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                    "project.asgi:application"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not _up(url):
        assert time.monotonic() < deadline, stack.dump_logs()
        time.sleep(0.2)
    customer = stack.register_customer()
    token = customer["token"]
    try:
        urllib.request.build_opener(_NoRedirect).open(f"{url}/chat/?token={token}&x=1", timeout=10).close()
    except urllib.error.HTTPError as exc:  # the redirect to /chat/, not followed
        assert exc.code == 302, exc

    async def socket() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/v1/?token={token}") as ws:
            await ws.send('{"type": "resume", "after": 0}')
            await asyncio.wait_for(ws.recv(), 10)

    asyncio.run(socket())
    time.sleep(0.5)  # the log line of the socket's close is written after it
    log = (stack.logs / "daphne-logged.log").read_text()
    assert "/chat/?token=…&x=…" in log and "/ws/v1/" in log, log
    assert token not in log and token.split(".")[-1] not in log


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/healthz", timeout=2).close()
        return True
    except OSError as exc:
        return getattr(exc, "code", None) is not None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
