"""How Daphne treats websocket frames that break the protocol.

Daphne's autobahn factory fails a connection on a protocol error (a text
frame that is not UTF-8, a message over Daphne's 1 MiB limit) by dropping
the TCP connection, which a client sees as a reset. autobahn can instead
close with the status the protocol defines (1007 invalid payload, 1009 too
big), which tells the client why. Daphne does not expose the option, and
``daphne project.asgi:application`` builds its factory after importing this
application, so the factory class is adjusted here, once.
"""

from __future__ import annotations

from typing import Any


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
