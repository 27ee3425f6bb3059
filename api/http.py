"""JSON API plumbing shared by every endpoint: authentication, CSRF for
cookie sessions, body and query parsing with limits, and the ``api``
decorator that answers every refusal in the error shape (api.errors).
No business rule lives here."""

from __future__ import annotations

import functools
import inspect
import json
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from accounts.principals import Principal, principal_from_cookies, principal_from_token
from api.errors import ApiError, MethodNotAllowed, response_for
from chat.commands import Actor
from kernel import ids
from kernel.errors import DomainError
from kernel.text import is_storable_text

Audience = Literal["customer", "agent", "any"]

# -- documentation -----------------------------------------------------------------

# A JSON Schema: the name of a component schema (api.schemas.COMPONENTS) or a dict.
Schema: TypeAlias = str | dict[str, Any]
# An error an operation can answer: a DomainError subclass (its class ``status``
# and ``code``) or (status, code) for one raised with other values.
ErrorSpec: TypeAlias = type[DomainError] | tuple[int, str]


@dataclass(frozen=True)
class Doc:
    """One operation's documentation, declared next to its view (``@doc``).

    api.openapi turns it into the OpenAPI operation; the errors that follow
    from the ``api`` decorator itself (authentication, CSRF, the JSON body,
    the query parameters) are added there, so ``errors`` lists only the
    endpoint's own.
    """

    method: str
    summary: str
    # What generated clients call it: camelCase, a verb and its object (``claimConversation``). Required.
    operation_id: str = ""
    description: str = ""
    body: Schema | None = None  # the request body (JSON, read with json_body, unless ``body_media`` says otherwise)
    body_media: str = "application/json"
    params: Sequence[dict[str, Any]] = ()  # query and header parameters (api.schemas)
    path: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # path parameter schemas
    responses: Mapping[int, Schema | None] = field(default_factory=dict)  # None: no body (or ``media``)
    # Successes whose body is not JSON: status -> the media types it can have (bytes, no schema).
    media: Mapping[int, Sequence[str]] = field(default_factory=dict)
    errors: Sequence[ErrorSpec] = ()
    security: Sequence[str] | None = None  # scheme names; None: from the audience


def doc(method: str, summary: str, **details: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach the documentation of ``method`` to a view (stack one per method).

    Put it below ``@api``: the attribute is carried to the wrapped view.
    """

    def attach(view: Callable[..., Any]) -> Callable[..., Any]:
        docs: dict[str, Doc] = dict(getattr(view, "api_docs", {}))
        docs[method] = Doc(method, summary, **details)
        view.api_docs = docs  # type: ignore[attr-defined]
        return view

    return attach

# -- input -----------------------------------------------------------------------


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or an ApiError saying what is wrong with it."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "body_too_large", "the request body is too large") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def field_str(data: dict[str, Any], name: str, *, required: bool = True, max_length: int = 20_000) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"{name!r} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"{name!r} must be a string")
    if not is_storable_text(value):
        raise ApiError(400, "invalid_field", f"{name!r} contains NUL or lone surrogate characters")
    if len(value) > max_length:
        raise ApiError(400, "invalid_field", f"{name!r} is longer than {max_length} characters")
    return value


def field_uuid(data: dict[str, Any], name: str) -> uuid.UUID:
    return parse_uuid(field_str(data, name) or "", name)


def parse_uuid(value: str, name: str) -> uuid.UUID:
    parsed = ids.parse_uuid(value)
    if parsed is None:
        raise ApiError(400, "invalid_field", f"{name!r} must be a UUID as 8-4-4-4-12 hex digits") from None
    return parsed


def query_int(request: HttpRequest, name: str, default: int, *, low: int = 0, high: int = 2**62) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name!r} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter", f"{name!r} must be between {low} and {high}")
    return value


# -- authentication ------------------------------------------------------------------


def actor_of(principal: Principal) -> Actor:
    """Who the authenticated caller is to chat."""
    return Actor.of(principal.kind, principal.id, principal.name)


def authenticate(request: HttpRequest) -> Principal | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "invalid_token", "use Authorization: Bearer <token>")
        return principal_from_token(token.strip())
    return principal_from_cookies(request.COOKIES, getattr(request, "user", None))


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    check = CsrfViewMiddleware(lambda r: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type]


def _prepare(request: HttpRequest, methods: Collection[str], audience: Audience | None) -> Principal | None:
    if request.method not in methods:
        raise MethodNotAllowed(str(request.method), methods)
    if audience is None:
        return None
    principal = authenticate(request)
    if principal is None:
        raise ApiError(401, "not_authenticated", "authentication required")
    if principal.via_cookie and request.method not in ("GET", "HEAD", "OPTIONS") and _csrf_failure(request):
        raise ApiError(403, "csrf_failed", "CSRF token missing or incorrect")
    if audience != "any" and principal.kind != audience:
        raise ApiError(403, "forbidden", f"this endpoint is for {audience}s")
    return principal


def authenticated(request: HttpRequest, audience: Audience) -> Principal:
    """The caller, who must be of ``audience``, checked as ``api`` checks it (CSRF for a cookie's writes):
    for a view that accepts another credential first (``api(..., None)``), such as the integration key."""
    principal = _prepare(request, [request.method or "GET"], audience)
    assert principal is not None
    return principal


def api(methods: Collection[str], audience: Audience | None) -> Callable[..., Any]:
    """Wrap a view: method check, authentication, CSRF, and errors as JSON.

    The view is called as ``view(request, principal, **kwargs)`` (without
    ``principal`` when ``audience`` is None). Sync and async views both work.
    The wrapped view carries ``api_methods`` and ``api_audience`` (and the
    ``api_docs`` of ``@doc``), which api.openapi reads.
    """

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            async def async_wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
                try:
                    principal = await sync_to_async(_prepare)(request, methods, audience)
                    args = (principal,) if audience is not None else ()
                    return await view(request, *args, **kwargs)
                except Exception as exc:
                    response = response_for(exc)
                    if response is None:
                        raise
                    return response

            return _described(csrf_exempt(functools.wraps(view)(async_wrapper)), methods, audience)

        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            try:
                principal = _prepare(request, methods, audience)
                args = (principal,) if audience is not None else ()
                return view(request, *args, **kwargs)
            except Exception as exc:
                response = response_for(exc)
                if response is None:
                    raise
                return response

        return _described(csrf_exempt(functools.wraps(view)(wrapper)), methods, audience)

    return wrap


def _described(view: Callable[..., Any], methods: Collection[str], audience: Audience | None) -> Callable[..., Any]:
    view.api_methods = tuple(methods)  # type: ignore[attr-defined]
    view.api_audience = audience  # type: ignore[attr-defined]
    return view
