"""The websocket adapter (`/ws/v1/`): frames in, commands out; the log's frames out.

A socket registers with its process's dispatcher (realtime.dispatcher),
which offers it every logged event of its audience in log order; its
``Delivery`` sends them, holding them back while a ``resume`` replays the
log so that every event goes out once and in order. No business rule lives
here: frames become commands (chat.handlers) and answers become frames
(realtime.frames).

Each registered socket counts in the open-connections gauge until it
disconnects; replies and ``resync`` frames count as they go out
(observability.metrics).

An erased customer's sockets close (docs/privacy.md): each one, in whichever
process holds it, closes itself with 4410 right after it has sent the
``customer.erased`` frame of its own customer, live or replayed; a new socket
with their token (which still verifies: it is signed, not stored) is
refused with 4410.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts import presence, ratelimit
from accounts.errors import RateLimited
from accounts.principals import AuthenticationFailed, Principal, principal_from_cookies, principal_from_token
from accounts.sendbudget import charge_edit, charge_send
from chat.commands import Actor, EditMessage, MarkMessageAsRead, SendMessage
from chat.handlers import Written, edit_message, mark_message_as_read, send_message
from chat.ports import customer_directory
from eventstore import partitions
from eventstore.events import Cursor, Metadata
from eventstore.reading import UnknownPosition
from eventstore.store import EventStore
from kernel import ids
from kernel.errors import DomainError
from observability.metrics import FRAMES_REPLY, RESYNCS, WS_AGENTS, WS_CUSTOMERS
from readmodels.projections import PIPELINE
from realtime import frames
from realtime.delivery import Delivery
from realtime.dispatcher import db, get_dispatcher
from realtime.frames import AGENTS, FRAME_EVENT_TYPES, Envelope
from workers.outage import is_outage

MAX_FRAME_BYTES = 16 * 1024
REPLAY_BATCH = 500
RESUMES_PER_MINUTE = 30
TYPING_INTERVAL = 1.0  # seconds between typing frames a socket may send
#: Seconds a client has to answer ``resync`` with ``resume`` before the socket is closed (4000).
RESYNC_ANSWER_WITHIN = 15.0
#: Seconds a new socket holds live frames for the client's first ``resume``.
RESUME_GRACE = 1.0

CLOSE_RESUME = 4000  # reconnect and resume
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_ERASED = 4410  # the customer was erased: final, never reconnect (HTTP answers their writes 410 too)
CLOSE_TOO_MANY_SOCKETS = 4429  # this identity holds PARLEY_SOCKETS_PER_IDENTITY sockets here already
#: Seconds a resume waits for a client that does not read what it was sent before closing (4000).
DRAIN_WITHIN = 30.0

log = logging.getLogger(__name__)


class FrameError(DomainError):
    """A frame the socket refuses (answered with an error frame, never a close)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail, code=code)


def _authenticate(scope: dict[str, Any]) -> Principal | None:
    token = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
    if token:
        return principal_from_token(token)
    session = scope.get("session")
    return principal_from_cookies(
        scope.get("cookies", {}), scope.get("user"), session_key=getattr(session, "session_key", None)
    )


def _identify(scope: dict[str, Any]) -> tuple[Principal | None, bool]:
    """Who the socket speaks for, and whether that is a customer who no longer exists.

    A customer token is signed, not stored: an erased customer's still
    verifies, and so does the chat page's cookie holding it. The customers
    context knows whether the customer exists (chat's ``CustomerDirectory``
    port: mostly from the process's memory, else one query), asked on the
    same database thread as the authentication, so the handshake makes one
    hop for both. Memory can be stale for a few seconds after an erasure
    in other processes; the dispatcher covers that (``Dispatcher.erased``).
    """
    principal = _authenticate(scope)
    gone = principal is not None and principal.kind == "customer" and not customer_directory().is_known(principal.customer_id)
    return principal, gone


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
    # Sockets never use the channel layer themselves (no channel, no group
    # per socket): the process's dispatcher does, once for all of them.
    channel_layer_alias = "parley.sockets-use-the-dispatcher"

    principal: Principal | None = None
    delivery: Delivery | None = None
    #: Set by ``close``: nothing is sent after the close frame (autobahn refuses a send on a closing socket).
    closing = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its ``close_old_connections`` before every
        message: that is a hop to the process's one thread-sensitive thread
        and back for each frame a client sends (about a tenth of a loaded
        Daphne's event-loop time). This consumer never touches Django's
        per-thread connections: its database work runs on the realtime
        database threads (``db``), which keep their own (and start afresh
        after an error)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.listener_id = uuid.uuid4().hex
        self.last_typing = 0.0
        self.audience = ""
        self._resync_timer: asyncio.TimerHandle | None = None
        self._accepted = False
        # Accepted only once registered with the dispatcher (or to say why not):
        # a client whose handshake completed is already counted in its audience.
        try:
            principal, gone = await db(_identify)(self.scope)
        except AuthenticationFailed as err:
            await self._refuse(err.code, err.detail, CLOSE_UNAUTHENTICATED)
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            await self._refuse("unavailable", "the database cannot be reached right now; reconnect", CLOSE_RESUME)
            return
        if principal is None:
            await self._refuse("not_authenticated", "log in or pass ?token=", CLOSE_UNAUTHENTICATED)
            return
        if principal.via_cookie and not _origin_allowed(self.scope):
            await self._refuse("forbidden_origin", "this origin may not use the session cookie", CLOSE_FORBIDDEN_ORIGIN)
            return
        if gone:
            await self._refuse_erased()
            return
        self.audience = AGENTS if principal.kind == "agent" else frames.customer_audience(principal.id)
        self.principal = principal
        dispatcher = get_dispatcher()
        try:
            registered_at = await dispatcher.register(self)
        except Exception:
            self.principal = None
            await self._refuse("unavailable", "the server cannot serve live updates right now; reconnect", CLOSE_RESUME)
            return
        if self._sockets_of_this_identity(dispatcher) > settings.PARLEY_SOCKETS_PER_IDENTITY:
            # Counted after registering, so sockets opened at once cannot all slip under the cap.
            dispatcher.unregister(self)
            self.principal = None
            await self._refuse("too_many_sockets", f"at most {settings.PARLEY_SOCKETS_PER_IDENTITY} open sockets "
                               "per identity; close another one first", CLOSE_TOO_MANY_SOCKETS)
            return
        if principal.kind == "customer" and dispatcher.erased(principal.id):
            # Known above from a stale memory, but the erasure went by before this socket registered.
            dispatcher.unregister(self)
            self.principal = None
            await self._refuse_erased()
            return
        # Set before the next suspension point: the dispatcher offers nothing in between.
        self.delivery = Delivery(self.send_text, registered_at)
        # Open until disconnect() takes the delivery away again (once, whichever way it closes).
        self._open = WS_AGENTS if principal.kind == "agent" else WS_CUSTOMERS
        self._open.inc()
        self._replaying = False
        await self._accept()
        loop = asyncio.get_running_loop()
        self._grace = loop.call_later(RESUME_GRACE, lambda: loop.create_task(self._go_live()))
        if principal.kind == "agent":
            # Online for auto-assignment (every process sees it), then for the other dashboards.
            try:
                await db(presence.agent_connected)(self.listener_id, principal.id)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                await self.close(code=CLOSE_RESUME)  # the database went away meanwhile: reconnect
                return
            await dispatcher.ephemeral(AGENTS, self._presence("online"), sender=self.listener_id, who=True)

    def _sockets_of_this_identity(self, dispatcher: Any) -> int:
        """This identity's sockets registered in this process (this one included)."""
        me = self.principal
        assert me is not None
        return sum(1 for other in dispatcher.audiences.get(self.audience, ())
                   if other.principal is not None and (other.principal.kind, other.principal.id) == (me.kind, me.id))

    async def _drain(self) -> bool:
        """Wait while the client has more than half its send buffer unread (a resume replaying the log
        must not outrun a slow reader); False, and the socket closed with 4000, if it does not read."""
        buffer = self.scope.get("extensions", {}).get("parley.send_buffer")
        if not buffer or buffer["unsent"]() <= buffer["limit"] // 2:
            return True
        deadline = time.monotonic() + DRAIN_WITHIN
        while buffer["unsent"]() > buffer["limit"] // 2:
            if time.monotonic() > deadline or self.delivery is None:
                await self.close(code=CLOSE_RESUME)
                return False
            await asyncio.sleep(0.05)
        return True

    async def _accept(self) -> None:
        if not self._accepted:
            self._accepted = True
            await self.accept()

    async def _refuse(self, code: str, detail: str, close_code: int) -> None:
        """Accept (so the reason can be read), send an error frame, and close."""
        await self._accept()
        await self.send_frame(frames.error(code, detail))
        await self.close(code=close_code)

    async def _refuse_erased(self) -> None:
        await self._refuse("erased", "this customer was erased: their conversation is gone; do not reconnect", CLOSE_ERASED)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close, and send nothing more: a close can come in the middle of sending (a replay
        that reaches an erasure, an ``ack`` on its way), and autobahn raises on a send after it."""
        self.closing = True
        await super().close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        if self._resync_timer is not None:
            self._resync_timer.cancel()
        if getattr(self, "_grace", None) is not None:
            self._grace.cancel()
        if self.delivery is None or self.principal is None:
            return
        self.delivery = None
        self._open.dec()
        dispatcher = get_dispatcher()
        dispatcher.unregister(self)
        if self.principal.kind == "agent":
            await db(presence.agent_disconnected)(self.listener_id)
            await dispatcher.ephemeral(AGENTS, self._presence("offline"), sender=self.listener_id)

    # -- what the dispatcher calls ------------------------------------------------------

    async def offer(self, cursor: Cursor, texts: tuple[str, ...]) -> None:
        if self.delivery is not None:
            await self.delivery.offer(cursor, texts)

    async def send_text(self, text: str) -> None:
        if self.closing:
            return
        await self.send(text_data=text)
        if self.audience != AGENTS and frames.is_erasure(text):
            await self._erased()

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if self.closing:
            return
        await self.send(text_data=frames.encode(frame))
        FRAMES_REPLY.inc()

    async def _erased(self) -> None:
        """This customer was erased, and this socket has just told them (``customer.erased``): close (4410).

        Every process hears of the erasure (the frame comes through the
        dispatcher, live, or from the log when a resume replays it), so each
        socket closes itself, whichever process it is on. Unregistered first:
        nothing more is offered to it, nothing it sends is acted on, and
        whatever was on its way out (the rest of a replay, ``resumed``, an
        ``ack``) is not sent after the close.
        """
        await self.disconnect(CLOSE_ERASED)
        self.principal = None
        await self.close(code=CLOSE_ERASED)

    async def _go_live(self) -> None:
        """The client sends no resume: live frames from where it connected."""
        delivery = self.delivery
        if delivery is None or delivery.anchored or not delivery.holding or self._replaying:
            return
        self._replaying = True
        try:
            if delivery.take_overflow():  # more was offered than held: read it from the log
                await self._replay_log(delivery.sent)
        finally:
            self._replaying = False
            await delivery.end_replay(None)

    async def resync(self) -> None:
        """The server cannot vouch for this socket: hold live frames and ask the client to resume."""
        if self.delivery is None or self.delivery.holding:
            return  # holding already: a resume (the client's first, or an answer) is coming
        self.delivery.begin_replay()
        await self.send_frame(frames.resync())
        RESYNCS.inc()
        loop = asyncio.get_running_loop()
        self._resync_timer = loop.call_later(RESYNC_ANSWER_WITHIN, lambda: loop.create_task(self._unanswered()))

    async def _unanswered(self) -> None:
        await self.close(code=CLOSE_RESUME)

    async def revoke(self, detail: str) -> None:
        """This socket's credentials were revoked: say so and close (4401)."""
        await self.disconnect(CLOSE_UNAUTHENTICATED)
        self.principal = None  # nothing it sends is acted on any more
        await self._refuse("credentials_revoked", detail, CLOSE_UNAUTHENTICATED)

    @property
    def presence_frame(self) -> str | None:
        """This agent's "online" frame, to answer a newcomer's question."""
        if self.principal is None or self.principal.kind != "agent":
            return None
        return frames.encode(self._presence("online"))

    def _presence(self, status: str) -> dict[str, Any]:
        assert self.principal is not None
        return frames.presence(self.principal.id, self.principal.name, status)

    # -- client -> server ------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.principal is None:
            return
        ref = None
        kind: object = None
        try:
            if text_data is None:
                raise FrameError("binary_frame", "frames are JSON text; binary frames are not accepted")
            if len(text_data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
                raise FrameError("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
            try:
                frame = json.loads(text_data)
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
            if kind != "resume":
                await self._go_live()  # the client did not start with a resume: it wants none
            await handler(frame)
        except DomainError as err:  # the frame's own faults and every context's refusals
            error = frames.error(err.code, err.detail, ref)
            if isinstance(err, RateLimited):
                error["retry_after"] = err.retry_after
            await self.send_frame(error)
        except UnknownPosition as err:
            await self.send_frame(frames.error("unknown_position", f"position {err.args[0]} names no event", ref))
        except Exception as exc:
            if not is_outage(exc):
                raise
            # The database is down: nothing was done for this frame. Reconnect and resume (4000).
            log.warning("database unavailable: a %r frame closed its socket with 4000", kind, exc_info=exc)
            await self.send_frame(frames.error("unavailable", "the database cannot be reached right now; "
                                               "reconnect and resume", ref))
            await self.close(code=CLOSE_RESUME)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_frame(frames.pong())

    async def on_send(self, frame: dict[str, Any]) -> None:
        assert self.principal is not None
        message_id = _uuid(frame, "message_id")
        attachments = _uuids(frame, "attachments")
        # A message of attachments alone may leave out its body.
        body = _str(frame, "body") if not attachments or frame.get("body") is not None else ""
        if self.principal.kind == "customer":
            customer_id = self.principal.customer_id
        else:
            customer_id = _uuid(frame, "customer_id")
        principal = self.principal
        cmd = SendMessage(message_id, customer_id, self._actor(), body, attachments=attachments)
        metadata = self._metadata()

        def charge_and_send() -> Written:
            charge_send(principal.kind, principal.id)  # the budget the sender's HTTP requests share
            return send_message(cmd, metadata=metadata, adapter="websocket")

        # One hop to a database thread for both, not two (this is the live path).
        await self._ack(message_id, await db(charge_and_send)())

    async def on_edit(self, frame: dict[str, Any]) -> None:
        assert self.principal is not None
        message_id = _uuid(frame, "message_id")
        cmd = EditMessage(message_id, self._actor(), _str(frame, "body"))
        principal, metadata = self.principal, self._metadata()

        def charge_and_edit() -> Written:
            charge_edit(principal.kind, principal.id)  # the budget the sender's HTTP requests share
            return edit_message(cmd, metadata=metadata, adapter="websocket")

        written = await db(charge_and_edit)()
        await self._ack(message_id, written)

    async def on_read(self, frame: dict[str, Any]) -> None:
        assert self.principal is not None
        message_id = _uuid(frame, "message_id")
        cmd = MarkMessageAsRead(message_id, self._actor())
        written = await db(mark_message_as_read)(cmd, metadata=self._metadata(), adapter="websocket")
        await self._ack(message_id, written)

    def _actor(self) -> Actor:
        assert self.principal is not None
        return Actor.of(self.principal.kind, self.principal.id, self.principal.name)

    def _metadata(self) -> Metadata:
        return Metadata(actor=self._actor().label, correlation_id=uuid.uuid4())

    async def _ack(self, message_id: uuid.UUID, outcome: Written) -> None:
        await self.send_frame(frames.ack(message_id, outcome.position))

    async def on_typing(self, frame: dict[str, Any]) -> None:
        assert self.principal is not None
        now = time.monotonic()
        if now - self.last_typing < TYPING_INTERVAL:
            return  # rate limited: typing is a hint, extra frames are dropped
        self.last_typing = now
        sender = {"kind": self.principal.kind, "id": self.principal.id, "name": self.principal.name}
        if self.principal.kind == "customer":
            customer_id = self.principal.id
            audiences = [AGENTS]
        else:
            customer_id = str(_uuid(frame, "customer_id"))
            audiences = [frames.customer_audience(customer_id), AGENTS]
        for audience in audiences:
            await get_dispatcher().ephemeral(audience, frames.typing(customer_id, sender), sender=self.listener_id)

    # -- resume --------------------------------------------------------------------

    async def on_resume(self, frame: dict[str, Any]) -> None:
        assert self.principal is not None and self.delivery is not None
        after = frame.get("after")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise FrameError("invalid_field", "'after' must be a non-negative integer position")
        allowed = await db(ratelimit.hit)("resume", self._actor().label, limit=RESUMES_PER_MINUTE, window=60)
        if not allowed.allowed:
            raise FrameError("rate_limited", f"too many resumes; retry in {allowed.retry_after} s")
        start = await db(EventStore().cursor_at)(after)
        if self._resync_timer is not None:
            self._resync_timer.cancel()
            self._resync_timer = None
        delivery = self.delivery
        delivery.begin_replay()
        self._replaying = True
        try:
            await self._replay_log(start)
        finally:
            self._replaying = False
            await delivery.end_replay(start)
        await self.send_frame(frames.resumed(delivery.sent.position))

    async def _replay_log(self, start: Cursor) -> None:
        """Send this socket's events after ``start`` from the log (offers wait meanwhile).

        Up to the pipeline's watermark (its checkpoint; with partitions, the
        lowest of theirs): the read models are exactly current to it, and the
        dispatcher offers this socket every event after the point it
        registered at, which is never beyond it. Whatever the
        delivery dropped from its buffer meanwhile is read from the log too.
        """
        assert self.delivery is not None
        delivery = self.delivery
        cursor = start
        while True:
            until = await db(partitions.watermark)(PIPELINE)
            while cursor < until:
                end, envs = await db(self._replay_batch)(cursor, until)
                for env in envs:
                    await delivery.replay(env.cursor, env.frames_for(self.audience))
                    if self.closing or not await self._drain():
                        return  # closed meanwhile (the replay reached the customer's erasure), or the client does not read
                delivery.advance(end)
                cursor = end
            delivery.advance(start)
            if not delivery.take_overflow():
                return
            cursor = max(cursor, delivery.sent)

    def _replay_batch(self, cursor: Cursor, until: Cursor) -> tuple[Cursor, list[Envelope]]:
        batch = EventStore().read_batch(cursor, REPLAY_BATCH, types=FRAME_EVENT_TYPES, until=until)
        events = batch.events
        if self.audience != AGENTS:
            assert self.principal is not None
            events = frames.for_customer(events, self.principal.id)
        envs = [e for e in frames.envelopes(events) if e.frames_for(self.audience)]
        return batch.end, envs


def _uuid(frame: dict[str, Any], name: str) -> uuid.UUID:
    value = frame.get(name)
    if not isinstance(value, str):
        raise FrameError("missing_field" if value is None else "invalid_field", f"{name!r} must be a UUID string")
    parsed = ids.parse_uuid(value)
    if parsed is None:
        raise FrameError("invalid_field", f"{name!r} must be a UUID as 8-4-4-4-12 hex digits")
    return parsed


def _uuids(frame: dict[str, Any], name: str) -> tuple[uuid.UUID, ...]:
    """An optional list of UUID strings (absent: none)."""
    value = frame.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FrameError("invalid_field", f"{name!r} must be a list of UUID strings")
    parsed = [ids.parse_uuid(item) for item in value]
    if any(p is None for p in parsed):
        raise FrameError("invalid_field", f"{name!r} must hold UUIDs as 8-4-4-4-12 hex digits")
    return tuple(p for p in parsed if p is not None)


def _str(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str):
        raise FrameError("missing_field" if value is None else "invalid_field", f"{name!r} must be a string")
    return value
