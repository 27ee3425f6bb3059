"""The customer's rating of a resolved conversation (satisfaction, CSAT).

Requests become the conversations context's ``Rate`` command; the answer
shows the rating prompt as the command left it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, JsonResponse

from accounts.principals import Principal
from api.errors import ApiError
from api.http import api, doc, field_str, json_body, parse_uuid
from api.schemas import CORRELATION_ID
from conversations import handlers
from conversations.commands import Rate, clean_comment, clean_score
from conversations.errors import InvalidComment, InvalidScore, NotResolved, NotYourConversation
from conversations.events import Status
from eventstore.events import Metadata
from kernel import ids
from readmodels import folds, present


def prompt(outcome: handlers.Outcome) -> dict[str, Any]:
    """Whether the customer is asked to rate (the conversation is resolved) and their rating of this period."""
    c = outcome.conversation
    asked = c.status is Status.RESOLVED
    rated = c.rating if asked and c.rating is not None and c.rating.resolution == c.resolutions else None
    rating = present.present_rating(folds.rating(rated)) if rated is not None else None
    return {"asked": asked, "rating": rating, "position": outcome.position}


def _metadata(request: HttpRequest, customer_id: uuid.UUID) -> Metadata:
    correlation_id = ids.parse_uuid(request.headers.get("X-Correlation-Id", "")) or uuid.uuid4()
    return Metadata(actor=f"customer:{customer_id}", correlation_id=correlation_id)


@api(["GET", "POST"], "customer")
@doc("GET", "Whether the customer is asked to rate their conversation", operation_id="getRatingPrompt", responses={200: "RatingPrompt"},
     description="`asked` is true while the conversation is resolved; `rating` is the customer's rating of this "
     "resolved period (null until they rate). The customer's devices also hear `conversation.rating` frames.")
@doc("POST", "Rate the resolved conversation (the customer)", operation_id="rateConversation", params=[CORRELATION_ID], body="RateConversation",
     responses={201: "RatingPrompt", 200: "RatingPrompt"},
     errors=[NotResolved, NotYourConversation, InvalidScore, InvalidComment],
     description="`score` 1 to 5 and an optional `comment`. One rating per resolved period: rating again before the "
     "conversation is reopened replaces the score (201, one event each; the last counts), the same score and "
     "comment again answers 200 and changes nothing. An open, pending or snoozed conversation (or none yet) is "
     "400 `conversation_not_resolved`; naming another customer's conversation (`customer_id`) 400 "
     "`not_your_conversation`; a score outside 1 to 5, 400 `invalid_score`. Agents see the rating on the "
     "conversation (`rating`); endpoints subscribed to `conversation.rated` receive it.")
def rating(request: HttpRequest, principal: Principal) -> JsonResponse:
    customer_id = principal.customer_id
    if request.method == "GET":
        return JsonResponse(prompt(handlers.current(customer_id)))
    data = json_body(request)
    if "customer_id" in data and data["customer_id"] is not None:
        named = data["customer_id"]
        if not isinstance(named, str) or parse_uuid(named, "customer_id") != customer_id:
            raise NotYourConversation("a customer rates their own conversation only")
    if "score" not in data:
        raise ApiError(400, "missing_field", "'score' is required (1 to 5)")
    cmd = Rate(customer_id, clean_score(data["score"]), clean_comment(field_str(data, "comment", required=False) or ""))
    outcome = handlers.rate(cmd, metadata=_metadata(request, customer_id), adapter="http")
    return JsonResponse(prompt(outcome), status=201 if outcome.appended else 200)
