"""HTTP adapter for chat: turns requests into commands and read-model
queries. Rules live in chat.domain; reads in readmodels.queries."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse

from accounts.principals import Principal
from chat.domain import ChatMessage, EditMessage, MarkMessageAsRead, SendMessage
from chat.handlers import Outcome, edit_message, mark_message_as_read, send_message
from chat.ports import customer_directory
from eventstore.events import Metadata
from project.http import ApiError, api, field_str, field_uuid, json_body, parse_uuid, query_int
from readmodels import queries

MAX_PAGE = 500


def present_outcome(outcome: Outcome) -> dict[str, Any]:
    m: ChatMessage = outcome.message
    return queries.present_message(
        message_id=m.message_id, customer_id=m.customer_id, sender_kind=m.sender.kind.value,
        sender_id=m.sender.id, sender_name=m.sender.name, body=m.body, sent_at=m.sent_at,
        edited_at=m.edited_at, read_at=m.read_at, position=outcome.position,
    )


def _write_response(outcome: Outcome, *, created_status: int = 201) -> JsonResponse:
    return JsonResponse(
        {"message": present_outcome(outcome), "position": outcome.position},
        status=created_status if outcome.appended else 200,
    )


def _metadata(request: HttpRequest, principal: Principal) -> Metadata:
    corr = request.headers.get("X-Correlation-Id", "")
    try:
        correlation_id = uuid.UUID(corr) if corr else uuid.uuid4()
    except ValueError:
        correlation_id = uuid.uuid4()
    return Metadata(actor=principal.actor.label, correlation_id=correlation_id)


def _send(request: HttpRequest, principal: Principal, customer_id: uuid.UUID) -> JsonResponse:
    data = json_body(request)
    cmd = SendMessage(
        message_id=field_uuid(data, "message_id"),
        customer_id=customer_id,
        sender=principal.actor,
        body=field_str(data, "body") or "",
    )
    return _write_response(send_message(cmd, metadata=_metadata(request, principal)))


async def _min_position(request: HttpRequest) -> None:
    raw = request.GET.get("min_position")
    if raw is not None and raw != "":
        position = query_int(request, "min_position", 0)
        await queries.wait_until_processed(position)


async def _list_messages(request: HttpRequest, customer_id: uuid.UUID) -> JsonResponse:
    after = query_int(request, "after", 0)
    limit = query_int(request, "limit", 100, low=1, high=MAX_PAGE)
    await _min_position(request)
    page = await sync_to_async(queries.messages_after)(customer_id, after, limit)
    return JsonResponse({"messages": page.items, "position": page.position})


# -- customer endpoints ------------------------------------------------------------


@api(["GET", "POST"], "customer")
async def messages(request: HttpRequest, principal: Principal) -> JsonResponse:
    """GET: sync the customer's conversation after a position. POST: send."""
    if request.method == "POST":
        return await sync_to_async(_send)(request, principal, principal.customer_id)
    return await _list_messages(request, principal.customer_id)


@api(["GET"], "customer")
async def badge(request: HttpRequest, principal: Principal) -> JsonResponse:
    await _min_position(request)
    unread, position = await sync_to_async(queries.badge)(principal.customer_id)
    return JsonResponse({"unread": unread, "position": position})


# -- either side -------------------------------------------------------------------


@api(["PATCH"], "any")
def message_detail(request: HttpRequest, principal: Principal, message_id: str) -> JsonResponse:
    """Edit: only the sender."""
    data = json_body(request)
    cmd = EditMessage(parse_uuid(message_id, "message_id"), principal.actor, field_str(data, "body") or "")
    return _write_response(edit_message(cmd, metadata=_metadata(request, principal)), created_status=200)


@api(["POST"], "any")
def message_read(request: HttpRequest, principal: Principal, message_id: str) -> JsonResponse:
    """Mark read: only the receiving side; a second mark appends nothing."""
    cmd = MarkMessageAsRead(parse_uuid(message_id, "message_id"), principal.actor)
    outcome = mark_message_as_read(cmd, metadata=_metadata(request, principal))
    return JsonResponse({"position": outcome.position, "read_at": queries.rfc3339(outcome.message.read_at)})


# -- agent endpoints -------------------------------------------------------------------


async def _known_customer(customer_id: str) -> uuid.UUID:
    """The customer id, if the customers context knows it (else 404)."""
    cid = parse_uuid(customer_id, "customer_id")
    if not await sync_to_async(customer_directory().is_known)(cid):
        raise ApiError(404, "customer_not_found", f"no customer {cid}")
    return cid


@api(["GET", "POST"], "agent")
async def conversation_messages(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = await _known_customer(customer_id)
    if request.method == "POST":
        return await sync_to_async(_send)(request, principal, cid)
    return await _list_messages(request, cid)


@api(["GET"], "agent")
async def conversations(request: HttpRequest, principal: Principal) -> JsonResponse:
    limit = query_int(request, "limit", 50, low=1, high=MAX_PAGE)
    before_raw = request.GET.get("before")
    before = None
    if before_raw:
        try:
            before = dt.datetime.fromisoformat(before_raw.replace("Z", "+00:00"))
            if before.tzinfo is None:
                raise ApiError(400, "invalid_parameter", "'before' must carry a UTC offset")
            before = before.astimezone(dt.timezone.utc)
        except (ValueError, OverflowError):
            raise ApiError(400, "invalid_parameter", "'before' must be an RFC 3339 time in range") from None
    await _min_position(request)
    page = await sync_to_async(queries.conversations)(limit, before)
    return JsonResponse({"conversations": page.items, "position": page.position})


@api(["GET"], "agent")
async def conversation_detail(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    """The conversation row and the customer's contact details (read-only)."""
    cid = await _known_customer(customer_id)
    conv = await sync_to_async(queries.conversation)(cid)
    profile = await sync_to_async(queries.customer_profile)(cid)
    return JsonResponse({"conversation": conv, "customer": profile})
