"""Chat endpoints: requests become chat's commands and read-model reads.

Rules live in chat (its handlers and aggregate); reads in
readmodels.selectors, shaped by readmodels.present."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse

from accounts.errors import RateLimited
from accounts.principals import Principal
from accounts.sendbudget import charge_edit, charge_send
from api.errors import ApiError
from api.http import actor_of, api, doc, field_str, field_uuid, json_body, parse_uuid, query_int
from api.schemas import CORRELATION_ID, UUID_PATH, integer, query, ref
from attachments.errors import AttachmentAlreadySent, UnknownAttachment
from chat.commands import EditMessage, MarkMessageAsRead, SendMessage
from chat.errors import (
    CustomerNotFound,
    DuplicateAttachment,
    InvalidBody,
    MessageIdConflict,
    MessageNotFound,
    NotReceiver,
    NotSender,
    TooManyAttachments,
)
from chat.handlers import Written, edit_message, mark_message_as_read, send_message
from chat.ports import customer_directory
from conversations.commands import MAX_LABEL_CHARS, clean_label
from conversations.errors import InvalidLabel
from eventstore.events import Metadata
from eventstore.keys import SubjectErased
from kernel import ids
from readmodels import freshness, present, selectors

MAX_PAGE = 500

# -- documentation of the query parameters read below

AFTER = query("after", integer(0), "Changes after this position (a read's `position`; start with 0).",
              [(400, "invalid_parameter"), (400, "unknown_position")])
MESSAGE_LIMIT = query("limit", integer(100, 1, MAX_PAGE), "Page size.", [(400, "invalid_parameter")])
CONVERSATION_LIMIT = query("limit", integer(50, 1, MAX_PAGE), "Page size.", [(400, "invalid_parameter")])
MIN_POSITION = query(
    "min_position", integer(0), "Read your own write: wait (at most 2 s) until the answer includes this position.",
    [(400, "invalid_parameter"), (400, "unknown_position")],
)
BEFORE = query("before", {"type": "string", "format": "date-time"},
               "The `last_activity_at` of the previous page's last conversation.", [(400, "invalid_parameter")])
SEND: dict[str, Any] = {
    "body": "SendMessage", "params": [CORRELATION_ID], "responses": {201: "Written", 200: "Written"},
    "errors": [InvalidBody, MessageIdConflict, RateLimited, TooManyAttachments, DuplicateAttachment,
               UnknownAttachment, AttachmentAlreadySent, SubjectErased],
    "description": "A new `message_id` answers 201; the same id with the same body again 200 (nothing appended); "
    "with another body (or other attachments) 409. `attachments` names up to 10 uploads of the sender's "
    "(`POST /api/v1/attachments`), each sendable once: one sent with another message is 409 "
    "`attachment_already_sent`, one unknown, expired or uploaded by someone else 400 `unknown_attachment`. "
    "Each send costs one of the sender's sends per minute (HTTP and websocket together); "
    "past them, 429 `rate_limited` with `Retry-After`.",
}
LIST: dict[str, Any] = {
    "params": [AFTER, MESSAGE_LIMIT, MIN_POSITION], "responses": {200: "MessagePage"},
    "description": "Messages created or changed after `after`, oldest change first, each once in its latest "
    "state. A full page answers with its last message's position: call again with `after=<position>`.",
}


def present_outcome(outcome: Written) -> dict[str, Any]:
    m = outcome.message
    return present.present_message(
        message_id=m.message_id, customer_id=m.customer_id, sender_kind=m.sender.kind.value,
        sender_id=m.sender.id, sender_name=m.sender.name, body=m.body, sent_at=m.sent_at,
        edited_at=m.edited_at, read_at=m.read_at, position=outcome.position,
        names=(selectors.customer_names({m.customer_id}) if m.sender.kind == "customer"
               else selectors.agent_names({m.sender.id})),
        attachments=present.attachment_rows(m.attachments),
    )


def _write_response(outcome: Written, *, created_status: int = 201) -> JsonResponse:
    return JsonResponse(
        {"message": present_outcome(outcome), "position": outcome.position},
        status=created_status if outcome.appended else 200,
    )


def _metadata(request: HttpRequest, principal: Principal) -> Metadata:
    correlation_id = ids.parse_uuid(request.headers.get("X-Correlation-Id", "")) or uuid.uuid4()
    return Metadata(actor=actor_of(principal).label, correlation_id=correlation_id)


def attachment_ids(data: dict[str, Any]) -> tuple[uuid.UUID, ...]:
    """A send's ``attachments``: a list of UUIDs (their number and repeats are chat's rules)."""
    raw = data.get("attachments")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ApiError(400, "invalid_field", "'attachments' must be a list of attachment ids")
    return tuple(parse_uuid(item, "attachments") for item in raw)


def _send(request: HttpRequest, principal: Principal, customer_id: uuid.UUID) -> JsonResponse:
    data = json_body(request)
    attachments = attachment_ids(data)
    cmd = SendMessage(
        message_id=field_uuid(data, "message_id"),
        customer_id=customer_id,
        sender=actor_of(principal),
        body=field_str(data, "body", required=not attachments) or "",
        attachments=attachments,
    )
    charge_send(principal.kind, principal.id)  # the budget the sender's sockets share
    return _write_response(send_message(cmd, metadata=_metadata(request, principal), adapter="http"))


async def _min_position(request: HttpRequest) -> None:
    raw = request.GET.get("min_position")
    if raw is not None and raw != "":
        position = query_int(request, "min_position", 0)
        await freshness.wait_until_processed(position)


async def _list_messages(request: HttpRequest, customer_id: uuid.UUID, *, with_notes: bool = False) -> JsonResponse:
    after = query_int(request, "after", 0)
    limit = query_int(request, "limit", 100, low=1, high=MAX_PAGE)
    await _min_position(request)
    page = await sync_to_async(selectors.messages_after)(customer_id, after, limit, with_notes=with_notes)
    return JsonResponse({"messages": page.items, "position": page.position})


# -- customer endpoints ------------------------------------------------------------


@api(["GET", "POST"], "customer")
@doc("GET", "Sync the customer's conversation", operation_id="listMyMessages", **LIST)
@doc("POST", "Send a message as the customer", operation_id="sendMessage", **SEND)
async def messages(request: HttpRequest, principal: Principal) -> JsonResponse:
    """GET: sync the customer's conversation after a position. POST: send."""
    if request.method == "POST":
        return await sync_to_async(_send)(request, principal, principal.customer_id)
    return await _list_messages(request, principal.customer_id)


@api(["GET"], "customer")
@doc("GET", "The customer's unread badge", operation_id="getBadge", params=[MIN_POSITION], responses={200: "Badge"},
     description="The number of agent messages the customer has not marked read, as of `position`.")
async def badge(request: HttpRequest, principal: Principal) -> JsonResponse:
    await _min_position(request)
    unread, position = await sync_to_async(selectors.badge)(principal.customer_id)
    return JsonResponse({"unread": unread, "position": position})


# -- either side -------------------------------------------------------------------


@api(["PATCH"], "any")
@doc("PATCH", "Edit a message (its sender only)", operation_id="editMessage", body="EditMessage", params=[CORRELATION_ID],
     path={"message_id": UUID_PATH}, responses={200: "Written"},
     errors=[InvalidBody, NotSender, MessageNotFound, RateLimited, SubjectErased],
     description="An edit to the same body appends nothing. Customers see only their own conversation. Each "
     "customer may edit `PARLEY_CUSTOMER_EDITS_PER_MINUTE` (30) times a minute, each agent "
     "`PARLEY_AGENT_EDITS_PER_MINUTE` (120), HTTP and websocket together; past it 429 `rate_limited` with "
     "`Retry-After`, nothing stored.")
def message_detail(request: HttpRequest, principal: Principal, message_id: str) -> JsonResponse:
    """Edit: only the sender."""
    data = json_body(request)
    cmd = EditMessage(parse_uuid(message_id, "message_id"), actor_of(principal), field_str(data, "body") or "")
    charge_edit(principal.kind, principal.id)  # the budget the sender's sockets share
    outcome = edit_message(cmd, metadata=_metadata(request, principal), adapter="http")
    return _write_response(outcome, created_status=200)


@api(["POST"], "any")
@doc("POST", "Mark a message read (the receiving side only)", operation_id="markMessageRead", params=[CORRELATION_ID],
     path={"message_id": UUID_PATH}, responses={200: "ReadReceipt"}, errors=[NotReceiver, MessageNotFound, SubjectErased],
     description="The customer marks agent messages, any agent customer messages; marking twice appends nothing.")
def message_read(request: HttpRequest, principal: Principal, message_id: str) -> JsonResponse:
    """Mark read: only the receiving side; a second mark appends nothing."""
    cmd = MarkMessageAsRead(parse_uuid(message_id, "message_id"), actor_of(principal))
    outcome = mark_message_as_read(cmd, metadata=_metadata(request, principal), adapter="http")
    return JsonResponse({"position": outcome.position, "read_at": present.rfc3339(outcome.message.read_at)})


# -- agent endpoints -------------------------------------------------------------------


async def _known_customer(customer_id: str) -> uuid.UUID:
    """The customer id, if the customers context knows it (else 404)."""
    cid = parse_uuid(customer_id, "customer_id")
    if not await sync_to_async(customer_directory().is_known)(cid):
        raise ApiError(404, "customer_not_found", f"no customer {cid}")
    return cid


@api(["GET", "POST"], "agent")
@doc("GET", "Sync a customer's conversation, private notes included", operation_id="listConversationMessages",
     **{**LIST, "path": {"customer_id": UUID_PATH}, "errors": [CustomerNotFound], "responses": {200: "AgentMessagePage"},
        "description": LIST["description"] + " Private notes are items with `\"kind\": \"note\"`."})
@doc("POST", "Send a message to a customer as an agent", operation_id="sendAgentMessage",
     **{**SEND, "path": {"customer_id": UUID_PATH}, "errors": [*SEND["errors"], CustomerNotFound]})
async def conversation_messages(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = await _known_customer(customer_id)
    if request.method == "POST":
        return await sync_to_async(_send)(request, principal, cid)
    return await _list_messages(request, cid, with_notes=True)


STATUS = query("status", ref("ConversationStatus"), "Only conversations with this status.",
               [(400, "invalid_parameter")])
ASSIGNEE = query("assignee", {"type": "string", "pattern": "^(me|none|[0-9]{1,20})$"},
                 "`me` (the caller's), `none` (unassigned) or an agent id.", [(400, "invalid_parameter")])
LABEL = query("label", {"type": "string", "maxLength": MAX_LABEL_CHARS},
              "Only conversations with this label (any letter case).", [(400, "invalid_parameter")])
AWAITING = query("awaiting_reply", {"type": "string", "const": "true"}, "Only conversations whose customer spoke last.",
                 [(400, "invalid_parameter")])
UNREAD = query("unread", {"type": "string", "const": "true"}, "Only conversations unread for the caller: a customer message no agent "
               "has read, or marked unread by the caller.", [(400, "invalid_parameter")])
BEFORE_ID = query("before_id", {"type": "string", "format": "uuid"},
                  "With `before`: the `customer_id` of the previous page's last conversation (so conversations with "
                  "the same `last_activity_at` are neither skipped nor repeated).", [(400, "invalid_parameter")])
LIST_FILTERS = [STATUS, ASSIGNEE, LABEL, AWAITING, UNREAD]


def _flag(request: HttpRequest, name: str) -> bool:
    raw = request.GET.get(name) or None
    if raw is None:
        return False
    if raw != "true":
        raise ApiError(400, "invalid_parameter", f"{name!r} must be true (or left out)")
    return True


def _list_filters(request: HttpRequest, principal: Principal) -> selectors.ListFilter:
    status = request.GET.get("status") or None
    if status is not None and status not in ("open", "pending", "snoozed", "resolved"):
        raise ApiError(400, "invalid_parameter", "'status' must be open, pending, snoozed or resolved")
    assignee: str | None = None
    raw = request.GET.get("assignee") or None
    if raw == "me":
        assignee = principal.id
    elif raw == "none":
        assignee = ""
    elif raw is not None:
        if not (raw.isdigit() and len(raw) <= 20):
            raise ApiError(400, "invalid_parameter", "'assignee' must be me, none or an agent id")
        assignee = raw
    label = request.GET.get("label") or None
    if label is not None:
        try:
            label = clean_label(label)
        except InvalidLabel as refused:
            raise ApiError(400, "invalid_parameter", f"'label': {refused.detail}") from None
    return selectors.ListFilter(
        status=status, assignee=assignee, label=label, awaiting_reply=_flag(request, "awaiting_reply"),
        unread_for=principal.id if _flag(request, "unread") else None,
    )


@api(["GET"], "agent")
@doc("GET", "Conversations, newest activity first", operation_id="listConversations",
     params=[CONVERSATION_LIMIT, BEFORE, BEFORE_ID, MIN_POSITION, *LIST_FILTERS], responses={200: "ConversationPage"},
     description="Every filter is answered by the server on every page: page on with `before` (and `before_id`) "
     "and the same filters. `marked_unread` says whether the caller marked the conversation unread.")
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
    before_id = None
    if request.GET.get("before_id"):
        before_id = ids.parse_uuid(request.GET["before_id"])
        if before_id is None or before is None:
            raise ApiError(400, "invalid_parameter", "'before_id' must be a UUID, given with 'before'")
    filters = _list_filters(request, principal)
    await _min_position(request)
    page = await sync_to_async(selectors.conversations)(limit, before, before_id=before_id, filters=filters,
                                                        viewer=principal.id)
    return JsonResponse({"conversations": page.items, "position": page.position})


@api(["GET"], "agent")
@doc("GET", "A conversation and the customer's contact details", operation_id="getConversation", path={"customer_id": UUID_PATH},
     responses={200: "ConversationDetail"}, errors=[CustomerNotFound])
async def conversation_detail(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    """The conversation row and the customer's contact details (read-only)."""
    cid = await _known_customer(customer_id)
    conv = await sync_to_async(selectors.conversation)(cid, viewer=principal.id)
    profile = await sync_to_async(selectors.customer_profile)(cid)
    return JsonResponse({"conversation": conv, "customer": profile})
