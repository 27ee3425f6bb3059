"""Operational endpoints of the composed service."""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

from project.bootstrap import consumers
from readmodels.status import consumer_status


def _database() -> str:
    try:
        with connection.cursor() as c:
            c.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # a health check reports, it does not raise
        return f"error: {type(exc).__name__}"


async def _channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        return "error: no channel layer configured"
    try:
        # A round trip through the layer: send to a fresh channel and read it back.
        channel = await layer.new_channel()
        probe = {"type": "health.probe", "id": uuid.uuid4().hex}
        await layer.send(channel, probe)
        got = await asyncio.wait_for(layer.receive(channel), timeout=2)
        return "ok" if got.get("id") == probe["id"] else "error: probe mismatch"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


async def healthz(request: HttpRequest) -> JsonResponse:
    database = await sync_to_async(_database)()
    layer = await _channel_layer()
    body: dict[str, object] = {"database": database, "channel_layer": layer}
    if database == "ok":
        status = await sync_to_async(consumer_status)([c.name for c in consumers()])
        body["consumers"] = {name: {"position": s["position"], "lag": s["lag"]} for name, s in status.items()}
    healthy = database == "ok" and layer == "ok"
    return JsonResponse(body, status=200 if healthy else 503)
