"""A database outage answered as one: ``503 unavailable`` with ``Retry-After``, never a 500.

While PostgreSQL is down, every request that needs it fails with a
connection error after at most the connect (or pool) timeout
(project.settings, about 2 s). That is not a bug, and the client should
not see Django's error page: it gets the error shape with code
``unavailable`` and is told when to try again. Any other exception is left
alone (a 500 is a bug).
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from api.errors import error_response
from workers.outage import RETRY_AFTER, is_outage

log = logging.getLogger(__name__)


def unavailable() -> HttpResponse:
    response = error_response(503, "unavailable", "the database cannot be reached right now; try again shortly")
    response["Retry-After"] = str(RETRY_AFTER)
    return response


class DatabaseOutageMiddleware(MiddlewareMixin):
    """Turns a view's database connection error into ``503 unavailable`` (see the module docstring)."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_outage(exception):
            return None
        log.warning("database unavailable: %s %s answered 503 (%s)", request.method, request.path,
                    type(exception).__name__)
        return unavailable()
