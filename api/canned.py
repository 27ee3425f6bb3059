"""The team's saved replies (canned responses): read by every agent, changed by their author.

Rules (the shortcut's form, placeholders, who may change what) live in
conversations.canned; here requests become its calls, and rows the API's
objects.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.principals import Principal
from api.errors import ApiError
from api.http import api, doc, json_body, parse_uuid
from api.schemas import UUID_PATH
from conversations import canned
from conversations.errors import CannedResponseNotFound, NotAuthor, ShortcutTaken
from conversations.models import CannedResponse
from readmodels import present, selectors

FIELDS = ("shortcut", "title", "body")
#: What a write's fields can be refused with (their codes name the field).
INVALID = [(400, "invalid_shortcut"), (400, "invalid_title"), (400, "invalid_body"), (400, "unknown_placeholder")]
RULES = (
    f"`shortcut`: 1 to {canned.MAX_SHORTCUT} letters a-z, digits, `-` and `_` (kept in lower case, a leading `/` "
    f"dropped), unique: one in use is 409 `shortcut_taken`. `title`: 1 to {canned.MAX_TITLE} characters. `body`: 1 to "
    f"{canned.MAX_BODY} characters; it may name " + ", ".join(f"`{{{{{p}}}}}`" for p in canned.PLACEHOLDERS)
    + ", which the dashboard fills in when the reply is inserted; any other `{{...}}` is 400 `unknown_placeholder`."
)


def present_canned(row: CannedResponse) -> dict[str, Any]:
    author = selectors.agent_names({row.author_id})
    return {
        "id": str(row.id), "shortcut": row.shortcut, "title": row.title, "body": row.body,
        "author": {"id": row.author_id, "name": author[row.author_id]},
        "created_at": present.rfc3339(row.created_at), "updated_at": present.rfc3339(row.updated_at),
    }


def _draft(request: HttpRequest) -> canned.Draft:
    data = json_body(request)
    values: dict[str, str | None] = {}
    for name in FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ApiError(400, "invalid_field", f"{name!r} must be a string")
        values[name] = value
    return canned.Draft(**values)


@api(["GET", "POST"], "agent")
@doc("GET", "The team's saved replies", operation_id="listCannedResponses", responses={200: "CannedResponseList"},
     description="Every saved reply, by shortcut: the composer offers them when an agent types `/`.")
@doc("POST", "Save a reply for the team", operation_id="createCannedResponse", body="CannedResponseCreate", responses={201: "CannedResponse"},
     errors=[*INVALID, ShortcutTaken], description="Every agent may use it; its author alone changes it. " + RULES)
def canned_responses(request: HttpRequest, principal: Principal) -> JsonResponse:
    if request.method == "POST":
        return JsonResponse(present_canned(canned.create(_draft(request), author_id=principal.id)), status=201)
    return JsonResponse({"canned_responses": [present_canned(row) for row in canned.every()]})


@api(["PATCH", "DELETE"], "agent")
@doc("PATCH", "Change a saved reply (its author only)", operation_id="updateCannedResponse", body="CannedResponseUpdate", path={"id": UUID_PATH},
     responses={200: "CannedResponse"}, errors=[*INVALID, ShortcutTaken, NotAuthor, CannedResponseNotFound],
     description="Any of `shortcut`, `title` and `body`; the others stay. Another agent's is 403 `not_author`. " + RULES)
@doc("DELETE", "Delete a saved reply (its author only)", operation_id="deleteCannedResponse", path={"id": UUID_PATH}, responses={204: None},
     errors=[NotAuthor, CannedResponseNotFound])
def canned_response(request: HttpRequest, principal: Principal, id: str) -> HttpResponse:
    canned_id = parse_uuid(id, "id")
    if request.method == "DELETE":
        canned.delete(canned_id, by=principal.id)
        return HttpResponse(status=204)
    return JsonResponse(present_canned(canned.change(canned_id, _draft(request), by=principal.id)))
