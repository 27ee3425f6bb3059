"""Errors as the API answers them: one shape, one mapping.

Every refusal is ``{"error": {"code": ..., "detail": ...}}`` with the
status the error carries (kernel.errors.DomainError). The contexts raise
their own DomainErrors; the API's own refusals (a malformed body, a wrong
method, a missing token) are ``ApiError``. Anything else is a bug and
answers 500.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

from eventstore.reading import UnknownPosition
from kernel.errors import DomainError


class ApiError(DomainError):
    """A refusal of the HTTP layer itself."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail, code=code, status=status)


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
    return None


def response_for(exc: Exception) -> JsonResponse | None:
    """The error response for ``exc``, or None when it is a bug (let it raise)."""
    refusal = as_domain_error(exc)
    if refusal is None:
        return None
    return error_response(refusal.status, refusal.code, refusal.detail)
