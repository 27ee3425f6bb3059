"""Errors as the API answers them: one shape, one mapping.

Every refusal is ``{"error": {"code": ..., "detail": ...}}`` with the
status the error carries (kernel.errors.DomainError). The contexts raise
their own DomainErrors; the API's own refusals (a malformed body, a wrong
method, a missing token) are ``ApiError``. Anything else is a bug and
answers 500.
"""

from __future__ import annotations

from collections.abc import Collection

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.common import no_append_slash
from django.views.decorators.csrf import csrf_exempt

from eventstore.reading import UnknownPosition
from kernel.errors import DomainError


class ApiError(DomainError):
    """A refusal of the HTTP layer itself."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail, code=code, status=status)


class MethodNotAllowed(ApiError):
    """405, with the methods the endpoint does answer (RFC 9110 requires ``Allow``)."""

    def __init__(self, method: str, allowed: Collection[str]) -> None:
        super().__init__(405, "method_not_allowed", f"{method} is not allowed here")
        self.allow = ", ".join(sorted(allowed))


def error_response(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "detail": detail}}, status=status)


def as_domain_error(exc: Exception) -> DomainError | None:
    """The refusal ``exc`` stands for (None: it is a bug)."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, UnknownPosition):  # the log's, which knows nothing of HTTP
        return ApiError(400, "unknown_position", f"position {exc.args[0]} names no event")
    if isinstance(exc, RequestDataTooBig):
        return ApiError(413, "body_too_large", "the request body is too large")
    if isinstance(exc, MultiPartParserError | TooManyFilesSent | TooManyFieldsSent):
        # An upload's multipart body that Django cannot (or will not) parse.
        return ApiError(400, "malformed_multipart", "the body is not a well-formed multipart form with one file")
    return None


def response_for(exc: Exception) -> JsonResponse | None:
    """The error response for ``exc``, or None when it is a bug (let it raise)."""
    refusal = as_domain_error(exc)
    if refusal is None:
        return None
    response = error_response(refusal.status, refusal.code, refusal.detail)
    retry_after = getattr(refusal, "retry_after", None)
    if retry_after:  # a rate limit says when to come back
        response["Retry-After"] = str(retry_after)
    allow = getattr(refusal, "allow", None)
    if allow is not None:
        response["Allow"] = allow
    return response


@no_append_slash
@csrf_exempt
def unknown_endpoint(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Every path under the API's prefixes that no route matches: the error
    shape, not Django's HTML page. Routed last (project.urls); exempt from
    APPEND_SLASH, which would otherwise redirect ``/api/v1/x`` to the
    ``/api/v1/x/`` this view also matches."""
    return error_response(404, "not_found", f"no endpoint {request.path}")
