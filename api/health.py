"""Operational endpoints of the composed service."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

from api.http import api, doc
from api.metrics import holds_metrics_key
from eventstore import groups
from readmodels.projections import PIPELINE
from realtime.dispatcher import get_dispatcher


def _database() -> str:
    try:
        with connection.cursor() as c:
            c.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # a health check reports, it does not raise
        return f"error: {type(exc).__name__}"


def _shard_of(layer: Any, channel: str) -> int:
    """Which Redis server of a sharded channel layer holds ``channel`` (0 when there is one)."""
    shards = getattr(layer, "_shards", None)  # the pub/sub layer
    if shards:
        return int(shards.index(layer._get_shard(channel)))
    if len(getattr(layer, "hosts", None) or []) > 1:  # the core layer
        return int(layer.consistent_hash(channel))
    return 0


async def _channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        return "error: no channel layer configured"
    servers = len(getattr(layer, "_shards", None) or getattr(layer, "hosts", None) or [None])
    probed: set[int] = set()
    try:
        # A round trip through each Redis server of the layer: send to a fresh
        # channel that lives there and read it back.
        for _ in range(16 * servers):
            channel = await layer.new_channel()
            shard = _shard_of(layer, channel)
            if shard in probed:
                continue
            probe = {"type": "health.probe", "id": uuid.uuid4().hex}
            await layer.send(channel, probe)
            got = await asyncio.wait_for(layer.receive(channel), timeout=2)
            if got.get("id") != probe["id"]:
                return "error: probe mismatch"
            probed.add(shard)
            if len(probed) == servers:
                return "ok"
        return f"error: reached {len(probed)} of {servers} channel-layer servers"
    except Exception as exc:
        reached = f" ({len(probed)} of {servers} channel-layer servers answered)" if servers > 1 else ""
        return f"error: {type(exc).__name__}{reached}"


def _realtime() -> dict[str, Any]:
    """How this process's sockets get the log: from publications, or read directly."""
    dispatcher = get_dispatcher()
    if dispatcher.cursor is None:
        return {"source": "idle (no socket has connected to this process yet)"}
    stats = dispatcher.stats
    return {
        "source": "publications" if dispatcher.following else "log (no publications heard: reading it directly)",
        "position": dispatcher.cursor.position,
        "last_publication_seconds_ago": round(time.monotonic() - stats.heard_at, 1),
        "gaps_filled_from_log": stats.fills,
        "resyncs": stats.resyncs,
    }


def _consumers() -> dict[str, dict[str, Any]]:
    """Every consumer group's position, lag, owner and the event it is stuck on, if any.

    A group stuck on an event stalls alone and is reported here, but the
    process can serve: only the pipeline, which the live path needs,
    decides the status code."""
    return {name: groups.status(name) for name in groups.names()}


#: What only an operator sees: a lease holder's owner string names its host and process id.
_OPERATOR_ONLY = ("owner",)
#: What anyone sees of the event a group is stuck on: that it is stuck, where and since when. Its
#: detail is the exception's own text (which may quote data, hosts or queries); its member and event
#: id are for the operator who fixes or parks it.
_PUBLIC_ERROR = ("position", "since")


def _public_status(status: dict[str, Any]) -> dict[str, Any]:
    public = {k: v for k, v in status.items() if k not in _OPERATOR_ONLY}
    if status.get("error"):
        public["error"] = {k: status["error"][k] for k in _PUBLIC_ERROR}
    return public


def _public(consumers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: _public_status(status) for name, status in consumers.items()}


@api(["GET"], None)
@doc("GET", "Whether this process can serve", operation_id="getHealth", responses={200: "Health", 503: "Health"}, security=[],
     description="503 when the database or the channel layer does not answer, or events wait and no pipeline runs. "
                 "Each consumer group's `owner` (the lease holder's host and process id) and, of the event a group "
                 "is stuck on, its `event_id`, `member` and `detail` (the exception's text) are shown only to a "
                 "caller with `Authorization: Bearer <PARLEY_METRICS_KEY>`; anyone sees its `position` and `since`.")
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when this process can serve; 503 when the database or the channel
    layer is down, or when events wait and no pipeline runs to process them."""
    database = await sync_to_async(_database)()
    layer = await _channel_layer()
    body: dict[str, object] = {"database": database, "channel_layer": layer, "realtime": _realtime()}
    healthy = database == "ok" and layer == "ok"
    if database == "ok":
        consumers = await sync_to_async(_consumers)()
        body["consumers"] = consumers if holds_metrics_key(request) else _public(consumers)
        # The live path needs every partition of the pipeline (one, unpartitioned).
        for name, status in consumers.items():
            if groups.group_of(name) == PIPELINE and status["lag"] and not status["running"]:
                healthy = False
    return JsonResponse(body, status=200 if healthy else 503)
