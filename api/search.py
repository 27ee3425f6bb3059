"""Search endpoints: agents search every conversation and customer,
customers their own conversation.

The matching, ranking and highlighting are the search read model's
(readmodels.fulltext, through readmodels.selectors.search); here the query
is checked and the answer sent.
"""

from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse

from accounts.errors import RateLimited
from accounts.principals import Principal
from accounts.sendbudget import charge_search
from api.errors import ApiError
from api.http import api, doc, query_int
from api.schemas import integer, query
from kernel.text import is_storable_text
from readmodels import freshness, selectors

MAX_QUERY_CHARS = 200
#: Words a query may hold: each is a prefix match the index must intersect.
MAX_QUERY_WORDS = 8
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Q = {**query("q", {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
             f"The words to find (1 to {MAX_QUERY_CHARS} characters, at most {MAX_QUERY_WORDS} words): each must "
             "start a word of the text.", [(400, "invalid_parameter")]), "required": True}
LIMIT = query("limit", integer(DEFAULT_LIMIT, 1, MAX_LIMIT), "Results at most.", [(400, "invalid_parameter")])
MIN_POSITION = query(
    "min_position", integer(0), "Read your own write: wait (at most 2 s) until the answer includes this position.",
    [(400, "invalid_parameter"), (400, "unknown_position")],
)
DESCRIPTION = (
    "Every word of `q` must begin a word of the text, in any order (`refun` finds \"refunded\"). Best match "
    "first. `highlight` is the matching text's best fragment: each match between U+0002 and U+0003, \"\u2026\" "
    "where the fragment cuts the text; show it as text, never as HTML. `position` is the position the index "
    "is current to. Each customer may search `PARLEY_CUSTOMER_SEARCHES_PER_MINUTE` (30) times a minute, each "
    "agent `PARLEY_AGENT_SEARCHES_PER_MINUTE` (120); past it 429 `rate_limited` with `Retry-After`."
)


def _query(request: HttpRequest) -> str:
    raw = request.GET.get("q")
    if raw is None or not raw.strip():
        raise ApiError(400, "invalid_parameter", "'q' is required: the words to search for")
    if len(raw) > MAX_QUERY_CHARS:
        raise ApiError(400, "invalid_parameter", f"'q' is longer than {MAX_QUERY_CHARS} characters")
    if not is_storable_text(raw):
        raise ApiError(400, "invalid_parameter", "'q' contains NUL or lone surrogate characters")
    if len(raw.split()) > MAX_QUERY_WORDS:
        raise ApiError(400, "invalid_parameter", f"'q' has more than {MAX_QUERY_WORDS} words")
    return raw.strip()


async def _search(request: HttpRequest, principal: Principal, customer_id: uuid.UUID | None) -> JsonResponse:
    q = _query(request)
    await sync_to_async(charge_search)(principal.kind, principal.id)
    limit = query_int(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    if request.GET.get("min_position"):
        await freshness.wait_until_processed(query_int(request, "min_position", 0))
    page = await sync_to_async(selectors.search)(q, limit, customer_id=customer_id)
    return JsonResponse({"results": page.items, "position": page.position})


@api(["GET"], "agent")
@doc("GET", "Search messages and customers", operation_id="search", params=[Q, LIMIT, MIN_POSITION], responses={200: "SearchResults"},
     errors=[RateLimited],
     description="Messages (their current text) of every conversation, and customers by name and email. "
     + DESCRIPTION + " A customer found by name or email is a result of `kind` `customer` with `message` null. "
     "Private notes are not searched.")
async def search(request: HttpRequest, principal: Principal) -> JsonResponse:
    return await _search(request, principal, None)


@api(["GET"], "customer")
@doc("GET", "Search the customer's own conversation", operation_id="searchMyMessages", params=[Q, LIMIT, MIN_POSITION],
     responses={200: "SearchResults"}, errors=[RateLimited],
     description="The messages (their current text) of the caller's own conversation, both sides. " + DESCRIPTION)
async def messages_search(request: HttpRequest, principal: Principal) -> JsonResponse:
    return await _search(request, principal, principal.customer_id)
