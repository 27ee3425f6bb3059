"""The websocket adapter (`/ws/v1/`): frames in, commands out; group messages in, frames out.

Live frames come from the fan-out consumer through the channel layer, one
group message per event. ``resume`` replays the same frames from the log,
up to what the fan-out has published; afterwards every event is delivered
at most once, in log order, by comparing event cursors with the last one
this socket sent. No business rule lives here.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.principals import AuthenticationFailed, Principal, principal_from_cookies, principal_from_token
from chat.domain import ChatError, EditMessage, MarkMessageAsRead, SendMessage
from chat.fanout import RealtimeFanout
from chat.handlers import Outcome, edit_message, mark_message_as_read, send_message
from chat.realtime import AGENTS_GROUP, FRAME_EVENT_TYPES, Envelope, envelopes
from eventstore.events import Cursor, Metadata
from eventstore.runner import checkpoint_cursor
from eventstore.store import EventStore, UnknownPosition
from project import ratelimit
from readmodels import queries

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 16 * 1024
REPLAY_BATCH = 500
RESUMES_PER_MINUTE = 30
TYPING_INTERVAL = 1.0  # seconds between typing frames a socket may send

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403


class FrameError(Exception):
    def __init__(self, code: str, detail: str, ref: str | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.ref = code, detail, ref


def _authenticate(scope: dict[str, Any]) -> Principal | None:
    token = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
    if token:
        return principal_from_token(token)
    return principal_from_cookies(scope.get("cookies", {}), scope.get("user"))


def _origin_allowed(scope: dict[str, Any]) -> bool:
    """Cookie-authenticated sockets must come from our own pages (no cross-site hijacking).

    Same rule as Django's CSRF check: the Origin must be this very host
    (scheme-less host:port equal to the Host header) or a trusted origin.
    """
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin", b"").decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1")
    if not origin or origin == "null":
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    return bool(host) and urlparse(origin).netloc == host


class ChatConsumer(AsyncWebsocketConsumer):
    principal: Principal

    async def connect(self) -> None:
        self.sent: Cursor | None = None  # cursor of the last event delivered to this socket
        self.last_typing = 0.0
        self.groups_joined: list[str] = []
        await self.accept()
        try:
            principal = await database_sync_to_async(_authenticate)(self.scope)
        except AuthenticationFailed as err:
            await self._refuse(err.code, err.detail, CLOSE_UNAUTHENTICATED)
            return
        if principal is None:
            await self._refuse("not_authenticated", "log in or pass ?token=", CLOSE_UNAUTHENTICATED)
            return
        if principal.via_cookie and not _origin_allowed(self.scope):
            await self._refuse("forbidden_origin", "this origin may not use the session cookie", CLOSE_FORBIDDEN_ORIGIN)
            return
        self.principal = principal
        await self._join(principal.group)
        if principal.kind == "agent":
            await self._presence("online", reply=True)

    async def _refuse(self, code: str, detail: str, close_code: int) -> None:
        await self.send_frame({"type": "error", "code": code, "detail": detail})
        await self.close(code=close_code)

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "principal", None) is not None and self.principal.kind == "agent":
            await self._presence("offline", reply=False)
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    # -- client -> server ------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if getattr(self, "principal", None) is None:
            return
        ref = None
        try:
            raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
            if len(raw.encode()) > MAX_FRAME_BYTES:
                raise FrameError("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
            try:
                frame = json.loads(raw)
            except (ValueError, RecursionError):
                raise FrameError("malformed_json", "the frame is not valid JSON") from None
            if not isinstance(frame, dict):
                raise FrameError("invalid_frame", "a frame is a JSON object with a type")
            ref = frame.get("message_id") if isinstance(frame.get("message_id"), str) else None
            kind = frame.get("type")
            handler = {
                "resume": self.on_resume,
                "message.send": self.on_send,
                "message.edit": self.on_edit,
                "message.read": self.on_read,
                "typing": self.on_typing,
                "ping": self.on_ping,
            }.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise FrameError("unknown_type", f"unknown frame type {kind!r}")
            await handler(frame)
        except FrameError as err:
            await self._error(err.code, err.detail, err.ref or ref)
        except ChatError as err:
            await self._error(err.code, err.detail, ref)
        except UnknownPosition as err:
            await self._error("unknown_position", f"position {err.args[0]} names no event", ref)

    async def _error(self, code: str, detail: str, ref: str | None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
        if ref:
            frame["ref"] = ref
        await self.send_frame(frame)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_frame({"type": "pong"})

    async def on_send(self, frame: dict[str, Any]) -> None:
        message_id = _uuid(frame, "message_id")
        body = _str(frame, "body")
        if self.principal.kind == "customer":
            customer_id = self.principal.customer_id
        else:
            customer_id = _uuid(frame, "customer_id")
            if not await queries.customer_known(customer_id):
                raise FrameError("customer_not_found", f"no customer {customer_id}", str(message_id))
        cmd = SendMessage(message_id, customer_id, self.principal.actor, body)
        await self._ack(message_id, await database_sync_to_async(send_message)(cmd, metadata=self._metadata()))

    async def on_edit(self, frame: dict[str, Any]) -> None:
        message_id = _uuid(frame, "message_id")
        cmd = EditMessage(message_id, self.principal.actor, _str(frame, "body"))
        await self._ack(message_id, await database_sync_to_async(edit_message)(cmd, metadata=self._metadata()))

    async def on_read(self, frame: dict[str, Any]) -> None:
        message_id = _uuid(frame, "message_id")
        cmd = MarkMessageAsRead(message_id, self.principal.actor)
        await self._ack(message_id, await database_sync_to_async(mark_message_as_read)(cmd, metadata=self._metadata()))

    def _metadata(self) -> Metadata:
        return Metadata(actor=self.principal.actor.label, correlation_id=uuid.uuid4())

    async def _ack(self, message_id: uuid.UUID, outcome: Outcome) -> None:
        await self.send_frame({"type": "ack", "ref": str(message_id), "position": outcome.position})

    async def on_typing(self, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last_typing < TYPING_INTERVAL:
            return  # rate limited: typing is a hint, extra frames are dropped
        self.last_typing = now
        sender = {"kind": self.principal.kind, "id": self.principal.id, "name": self.principal.name}
        if self.principal.kind == "customer":
            customer_id = self.principal.id
            targets = [AGENTS_GROUP]
        else:
            customer_id = str(_uuid(frame, "customer_id"))
            targets = [f"customer.{customer_id}", AGENTS_GROUP]
        out = {"type": "typing", "customer_id": customer_id, "sender": sender}
        for group in targets:
            await self.channel_layer.group_send(group, {"type": "parley.ephemeral", "frame": out, "from": self.channel_name})

    # -- resume --------------------------------------------------------------------

    async def on_resume(self, frame: dict[str, Any]) -> None:
        after = frame.get("after")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise FrameError("invalid_field", "'after' must be a non-negative integer position")
        allowed = await sync_to_async(ratelimit.hit)(
            "resume", self.principal.actor.label, limit=RESUMES_PER_MINUTE, window=60
        )
        if not allowed.allowed:
            raise FrameError("rate_limited", f"too many resumes; retry in {allowed.retry_after} s")
        store = EventStore()
        cursor = await database_sync_to_async(store.cursor_at)(after)
        # The client has everything up to `after`.
        self.sent = cursor
        # Replay only what the fan-out has already published: those frames
        # were built from projections that had caught up with them. Anything
        # later reaches this socket live (it joined its group on connect).
        # Live messages that arrive meanwhile wait in this socket's channel
        # (Channels handles one message at a time) and are de-duplicated by
        # cursor afterwards.
        until = await database_sync_to_async(checkpoint_cursor)(RealtimeFanout.name)
        while cursor < until:
            batch = await database_sync_to_async(self._replay_batch)(store, cursor, until)
            for env in batch.envelopes:
                await self._deliver(env.cursor, env.to_customer if self.principal.kind == "customer" else env.to_agents)
            if batch.end == cursor:
                break
            cursor = batch.end
        if self.sent < cursor:
            self.sent = cursor
        await self.send_frame({"type": "resumed", "position": self.sent.position})

    def _replay_batch(self, store: EventStore, cursor: Cursor, until: Cursor) -> _Replay:
        batch = store.read_batch(cursor, REPLAY_BATCH, types=FRAME_EVENT_TYPES, until=until)
        events = batch.events
        if self.principal.kind == "customer":
            # Filter before building frames: they cost queries.
            events = [r for r in events if str(r.event.customer_id) == self.principal.id]  # type: ignore[attr-defined]
        return _Replay([e for e in envelopes(events) if e.to_customer or e.to_agents], batch.end)

    async def _deliver(self, cursor: Cursor, frames: list[dict[str, Any]]) -> None:
        if self.sent is not None and cursor <= self.sent:
            return  # already delivered (replay and live overlap)
        self.sent = cursor
        for f in frames:
            await self.send_frame(f)

    # -- channel layer -> client ---------------------------------------------------

    async def parley_event(self, message: dict[str, Any]) -> None:
        """One logged event's frames for this socket's group."""
        await self._deliver(Cursor(int(message["tx"]), int(message["position"])), message["frames"])

    async def parley_ephemeral(self, message: dict[str, Any]) -> None:
        if message.get("from") == self.channel_name:
            return
        await self.send_frame(message["frame"])

    async def parley_presence(self, message: dict[str, Any]) -> None:
        if message.get("from") == self.channel_name:
            return
        await self.send_frame(message["frame"])
        if message.get("reply"):
            # A newcomer asks who is here; answering is bounded by agents' connects.
            await self._presence("online", reply=False)

    async def _presence(self, status: str, *, reply: bool) -> None:
        frame = {
            "type": "presence",
            "agent": {"id": self.principal.id, "name": self.principal.name},
            "status": status,
        }
        await self.channel_layer.group_send(
            AGENTS_GROUP, {"type": "parley.presence", "frame": frame, "from": self.channel_name, "reply": reply}
        )


@dataclass(frozen=True)
class _Replay:
    envelopes: list[Envelope]
    end: Cursor


def _uuid(frame: dict[str, Any], name: str) -> uuid.UUID:
    value = frame.get(name)
    if not isinstance(value, str):
        raise FrameError("missing_field" if value is None else "invalid_field", f"{name!r} must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FrameError("invalid_field", f"{name!r} must be a UUID") from None


def _str(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str):
        raise FrameError("missing_field" if value is None else "invalid_field", f"{name!r} must be a string")
    return value
