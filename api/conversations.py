"""Team workflow endpoints: claim, assign, status, snooze, labels, marking unread and private notes.

Requests become the conversations context's commands; every answer shows
the conversation as the command left it (the workflow fields from the
aggregate, the rest from the read model) with the position of the write.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.http import HttpRequest, JsonResponse

from accounts.principals import Principal
from api.errors import ApiError
from api.http import api, doc, field_str, field_uuid, json_body, parse_uuid
from api.schemas import CORRELATION_ID, UUID_PATH
from conversations import handlers
from conversations.commands import (
    MAX_LABELS,
    AddNote,
    Agent,
    Assign,
    ChangeLabels,
    Claim,
    MarkRead,
    MarkUnread,
    SetStatus,
    Snooze,
    clean_label,
)
from conversations.errors import (
    AgentNotFound,
    AlreadyAssigned,
    AssigneeChanged,
    ConversationNotFound,
    InvalidLabel,
    InvalidNote,
    InvalidSnooze,
    InvalidStatus,
    NoteIdConflict,
    TooManyLabels,
)
from eventstore.events import Metadata
from kernel import ids
from readmodels import present, selectors

WRITE: dict[str, Any] = {"params": [CORRELATION_ID], "path": {"customer_id": UUID_PATH},
                         "responses": {200: "ConversationWritten"}}


def _agent(principal: Principal) -> Agent:
    return Agent(principal.id, principal.name)


def _metadata(request: HttpRequest, principal: Principal) -> Metadata:
    correlation_id = ids.parse_uuid(request.headers.get("X-Correlation-Id", "")) or uuid.uuid4()
    return Metadata(actor=_agent(principal).label, correlation_id=correlation_id)


def present_outcome(outcome: handlers.Outcome, principal: Principal) -> dict[str, Any]:
    """The conversation after a command: the read model's row with the aggregate's workflow state."""
    c = outcome.conversation
    conv = selectors.conversation(c.customer_id) or {
        "customer_id": str(c.customer_id),
        "customer_name": selectors.customer_names({c.customer_id}).get(str(c.customer_id), ""),
        "last_message": None, "unread_for_agents": 0, "awaiting_reply": False,
        "last_activity_at": present.rfc3339(dt.datetime.now(dt.timezone.utc)),
    }
    shown = selectors.agent_names({c.assignee.id}) if c.assignee else {}
    return {
        **conv,
        "status": c.status.value,
        "assignee": {"id": c.assignee.id, "name": shown.get(c.assignee.id, c.assignee.name)} if c.assignee else None,
        "snoozed_until": present.rfc3339(c.snoozed_until),
        "first_response_due_at": present.rfc3339(c.first_response_due_at),
        "sla_breached": c.sla_breached,
        "labels": sorted(c.labels),
        "marked_unread": principal.id in c.unread_for,
        "position": max(outcome.position, int(conv.get("position", 0))),
    }


def _answer(outcome: handlers.Outcome, principal: Principal) -> JsonResponse:
    return JsonResponse({"conversation": present_outcome(outcome, principal), "position": outcome.position})


def _agent_id(data: dict[str, Any], name: str) -> str | None:
    if name not in data:
        raise ApiError(400, "missing_field", f"{name!r} is required (null for nobody)")
    value = data[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(400, "invalid_field", f"{name!r} must be an agent id or null")
    text = str(value)
    if not text.isdigit() or len(text) > 20:
        raise ApiError(400, "invalid_field", f"{name!r} must be an agent id or null")
    return text


@api(["POST"], "agent")
@doc("POST", "Claim a conversation", operation_id="claimConversation", **WRITE, errors=[AlreadyAssigned, ConversationNotFound],
     description="Assigns the conversation to the caller if nobody holds it (a claim of one's own conversation "
     "changes nothing); held by another agent, 409 `already_assigned`. Of agents claiming at once, exactly one wins.")
def claim(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cmd = Claim(parse_uuid(customer_id, "customer_id"), _agent(principal))
    return _answer(handlers.claim(cmd, metadata=_metadata(request, principal), adapter="http"), principal)


@api(["POST"], "agent")
@doc("POST", "Assign a conversation (compare-and-set)", operation_id="assignConversation", **WRITE, body="AssignConversation",
     errors=[AssigneeChanged, AgentNotFound, ConversationNotFound],
     description="Assigns to `agent_id` (null: unassigns) if the current assignee is `expected_assignee`; "
     "otherwise 409 `assignee_changed` and nothing changes.")
def assign(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = parse_uuid(customer_id, "customer_id")
    data = json_body(request)
    target, expected = _agent_id(data, "agent_id"), _agent_id(data, "expected_assignee")
    cmd = Assign(cid, Agent(target) if target is not None else None, expected, _agent(principal))
    return _answer(handlers.assign(cmd, metadata=_metadata(request, principal), adapter="http"), principal)


@api(["POST"], "agent")
@doc("POST", "Set a conversation's status", operation_id="setConversationStatus", **WRITE, body="ChangeConversationStatus",
     errors=[InvalidStatus, ConversationNotFound],
     description="`open`, `pending` or `resolved` (a snooze is `/snooze`). Resolving ends the waiting period. "
     "The same status again changes nothing.")
def status(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = parse_uuid(customer_id, "customer_id")
    value = field_str(json_body(request), "status", max_length=20) or ""
    cmd = SetStatus(cid, value, _agent(principal))
    return _answer(handlers.set_status(cmd, metadata=_metadata(request, principal), adapter="http"), principal)


@api(["POST"], "agent")
@doc("POST", "Snooze a conversation until a time", operation_id="snoozeConversation", **WRITE, body="SnoozeConversation",
     errors=[InvalidSnooze, ConversationNotFound],
     description="The conversation is `snoozed` until `until` (in the future, within a year), then reopens, "
     "exactly once, also if no worker ran at that moment (then as soon as one runs). A customer message or "
     "another status reopens it earlier and cancels the timer.")
def snooze(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = parse_uuid(customer_id, "customer_id")
    raw = field_str(json_body(request), "until", max_length=64) or ""
    try:
        until = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSnooze("'until' must be an RFC 3339 time") from None
    if until.tzinfo is None:
        raise InvalidSnooze("'until' must carry a UTC offset")
    cmd = Snooze(cid, until, _agent(principal))
    return _answer(handlers.snooze(cmd, metadata=_metadata(request, principal), adapter="http"), principal)


@api(["POST"], "agent")
@doc("POST", "Add a private note (agents only)", operation_id="addNote", params=[CORRELATION_ID], path={"customer_id": UUID_PATH},
     body="AddNote", responses={201: "NoteWritten", 200: "NoteWritten"},
     errors=[InvalidNote, NoteIdConflict, ConversationNotFound],
     description="A new `note_id` answers 201; the same id with the same body again 200 (nothing appended); "
     "with another body, or an id used in another conversation, 409 `note_id_conflict`. Notes are shown to "
     "agents only: never in a customer's answers, frames, resume, push or badge.")
def notes(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = parse_uuid(customer_id, "customer_id")
    data = json_body(request)
    cmd = AddNote(field_uuid(data, "note_id"), cid, _agent(principal), field_str(data, "body") or "")
    outcome = handlers.add_note(cmd, metadata=_metadata(request, principal), adapter="http")
    n = outcome.conversation.notes[cmd.note_id]
    author = selectors.agent_names({n.author_id}).get(n.author_id, n.author_name)
    note = present.present_note(note_id=n.note_id, customer_id=n.customer_id, author_id=n.author_id,
                                author_name=author, body=n.body, created_at=n.added_at, position=outcome.position)
    return JsonResponse({"note": note, "position": outcome.position}, status=201 if outcome.appended else 200)


def _labels(data: dict[str, Any], name: str) -> tuple[str, ...]:
    raw = data.get(name, [])
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ApiError(400, "invalid_field", f"{name!r} must be a list of labels (strings)")
    if len(raw) > MAX_LABELS:
        raise TooManyLabels(f"{name!r} names more than {MAX_LABELS} labels")
    return tuple(dict.fromkeys(clean_label(item) for item in raw))


@api(["POST"], "agent")
@doc("POST", "Add and remove a conversation's labels", operation_id="changeLabels", **{**WRITE, "body": "ChangeLabels"},
     errors=[InvalidLabel, TooManyLabels, ConversationNotFound, (400, "missing_field")],
     description="`add` and `remove` are lists of labels (either may be left out, not both). A label is 1 to "
     "32 letters, digits, `-` and `_`, starting with a letter or digit, kept in lower case (`VIP` is `vip`). "
     "Adding a label the conversation has, or removing one it has not, changes nothing; a label both added and "
     f"removed is 400 `invalid_label`; more than {MAX_LABELS} labels on a conversation, 400 `too_many_labels`.")
def labels(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = parse_uuid(customer_id, "customer_id")
    data = json_body(request)
    if "add" not in data and "remove" not in data:
        raise ApiError(400, "missing_field", "'add' or 'remove' is required")
    cmd = ChangeLabels(cid, _labels(data, "add"), _labels(data, "remove"), _agent(principal))
    return _answer(handlers.change_labels(cmd, metadata=_metadata(request, principal), adapter="http"), principal)


@api(["POST", "DELETE"], "agent")
@doc("POST", "Mark a conversation unread for the caller", operation_id="markConversationUnread", **WRITE, errors=[ConversationNotFound],
     description="The conversation counts as unread for the calling agent alone (`marked_unread` in their list, "
     "and in `?unread=true`), until they open it again (`DELETE`). Marking it twice changes nothing.")
@doc("DELETE", "Clear the caller's unread mark (they opened the conversation)", operation_id="clearConversationUnread", **WRITE, errors=[ConversationNotFound],
     description="The dashboard sends it when the agent opens a conversation they marked unread. Without a mark, "
     "nothing changes.")
def unread(request: HttpRequest, principal: Principal, customer_id: str) -> JsonResponse:
    cid = parse_uuid(customer_id, "customer_id")
    meta = _metadata(request, principal)
    if request.method == "DELETE":
        return _answer(handlers.mark_read(MarkRead(cid, _agent(principal)), metadata=meta, adapter="http"), principal)
    return _answer(handlers.mark_unread(MarkUnread(cid, _agent(principal)), metadata=meta, adapter="http"), principal)


@api(["GET"], "agent")
@doc("GET", "Every label in use", operation_id="listLabels", responses={200: "LabelList"},
     description="Each label some conversation carries, with how many, sorted by label: the choices of the "
     "list's label filter.")
def label_list(request: HttpRequest, principal: Principal) -> JsonResponse:
    found = selectors.labels()
    return JsonResponse({"labels": [{"label": u.label, "conversations": u.conversations} for u in found]})
