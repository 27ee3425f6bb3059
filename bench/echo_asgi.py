"""The baseline of bench/realtime.py: a bare Channels echo consumer.

Served by Daphne exactly like Parley (``python -m daphne -b 127.0.0.1 -p P
bench.echo_asgi:application``), without Django's project, a channel layer,
authentication or a database: each text frame comes straight back. What
Parley costs beyond this is the price of its own work per socket and frame.
"""

from __future__ import annotations

from django.conf import settings

if not settings.configured:
    # No CHANNEL_LAYERS: consumers get no channel name and join no group.
    settings.configure()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            await self.send(text_data=text_data)


application = ProtocolTypeRouter({"websocket": EchoConsumer.as_asgi()})
