"""JSON API plumbing shared by every context's views: authentication,
CSRF for cookie sessions, body parsing with limits, and the contract's
error shape. No business rule lives here."""

from __future__ import annotations

import functools
import inspect
import json
import uuid
from collections.abc import Callable, Collection
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from accounts.principals import AuthenticationFailed, Principal, principal_from_cookies, principal_from_token
from chat.domain import ChatError, is_storable_text
from customers.services import CustomerError
from eventstore.store import UnknownPosition

Audience = Literal["customer", "agent", "any"]

_CHAT_STATUS = {
    "invalid_body": 400,
    "message_id_conflict": 409,
    "message_not_found": 404,
    "not_sender": 403,
    "not_receiver": 403,
    "customer_not_found": 404,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "detail": detail}}, status=status)


def as_api_error(exc: Exception) -> ApiError | None:
    """Map a known domain or input error to its HTTP form (None: a bug)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ChatError):
        return ApiError(_CHAT_STATUS.get(exc.code, 400), exc.code, exc.detail)
    if isinstance(exc, CustomerError):
        return ApiError(404 if exc.code == "customer_not_found" else 400, exc.code, exc.detail)
    if isinstance(exc, UnknownPosition):
        return ApiError(400, "unknown_position", f"position {exc.args[0]} names no event")
    if isinstance(exc, AuthenticationFailed):
        return ApiError(401, exc.code, exc.detail)
    if isinstance(exc, RequestDataTooBig):
        return ApiError(413, "body_too_large", "the request body is too large")
    return None


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
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise ApiError(400, "invalid_field", f"{name!r} must be a UUID") from None


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
        raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed here")
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


def api(methods: Collection[str], audience: Audience | None) -> Callable[..., Any]:
    """Wrap a view: method check, authentication, CSRF, and errors as JSON.

    The view is called as ``view(request, principal, **kwargs)`` (without
    ``principal`` when ``audience`` is None). Sync and async views both work.
    """

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            async def async_wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
                try:
                    principal = await sync_to_async(_prepare)(request, methods, audience)
                    args = (principal,) if audience is not None else ()
                    return await view(request, *args, **kwargs)
                except Exception as exc:
                    mapped = as_api_error(exc)
                    if mapped is None:
                        raise
                    return error(mapped.status, mapped.code, mapped.detail)

            return csrf_exempt(functools.wraps(view)(async_wrapper))

        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            try:
                principal = _prepare(request, methods, audience)
                args = (principal,) if audience is not None else ()
                return view(request, *args, **kwargs)
            except Exception as exc:
                mapped = as_api_error(exc)
                if mapped is None:
                    raise
                return error(mapped.status, mapped.code, mapped.detail)

        return csrf_exempt(functools.wraps(view)(wrapper))

    return wrap
