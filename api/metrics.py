"""``GET /metrics``: this web process's metrics in Prometheus' format, for the holder of a key.

A web process listens where the public does, so its metrics answer only
``Authorization: Bearer $PARLEY_METRICS_KEY`` (compared in constant time).
Without a key configured the path does not exist (404, as any unknown path):
nothing tells a prober that metrics could be had. A wrong or missing key is
401 in the API's error shape. ``runworkers``, which serves no HTTP, exposes
its metrics on a bind of its own instead (PARLEY_METRICS_BIND; project.bootstrap).

Not part of the product API, so not in api.urls and its OpenAPI description:
routed from project.urls through this module's ``urlpatterns``.
See docs/metrics.md for what is reported.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from prometheus_client import CollectorRegistry

from api.errors import error_response
from eventstore import groups
from eventstore.metrics import CheckpointCollector
from observability import exposition

_registry: CollectorRegistry | None = None


def registry() -> CollectorRegistry:
    """What a scrape reports (built once per process): this process's metrics, or the
    host's in multiprocess mode, and the consumer groups' checkpoints read at scrape time."""
    global _registry
    if _registry is None:
        _registry = exposition.registry(CheckpointCollector(groups.names))
    return _registry


def _refused(code: str, detail: str) -> HttpResponse:
    response = error_response(401, code, detail)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def holds_metrics_key(request: HttpRequest) -> bool:
    """Whether the request carries ``Authorization: Bearer <PARLEY_METRICS_KEY>`` (never when no key is set)."""
    key = settings.PARLEY_METRICS_KEY
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return bool(key) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def metrics(request: HttpRequest) -> HttpResponse:
    key = settings.PARLEY_METRICS_KEY
    if not key:
        raise Http404("no metrics here")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not token.strip():
        return _refused("not_authenticated", "use Authorization: Bearer <PARLEY_METRICS_KEY>")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        return _refused("invalid_token", "the metrics key is wrong")
    if request.method not in ("GET", "HEAD"):
        refused = error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
        refused["Allow"] = "GET, HEAD"
        return refused
    body, content_type = exposition.render(registry(), request.headers.get("Accept", ""))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [path("metrics", metrics, name="metrics")]
