"""The OpenAPI 3.1 document of the HTTP API, built from the code and served
at ``GET /api/v1/openapi.json``.

Nothing here is written by hand per endpoint: the paths are api.urls' routes,
the methods and audiences those of each view's ``api`` decorator, and the
rest the ``@doc`` next to each view (api.http.Doc) with the shapes of
api.schemas. Every error an operation can answer is listed under its status
with the codes it can carry (``x-error-codes``; the schema is always the one
``Error``): the endpoint's own (``Doc.errors``) and those that follow from
how it is called (authentication, CSRF, a JSON body, query and path
parameters), added here from the same facts ``api`` acts on. The
``webhooks`` section comes from api.webhook_docs' table.

A route, or a method of one, without ``@doc`` (or a ``@doc`` without an
``operation_id``) makes ``build`` raise, and tests/integration/test_openapi.py
fails, so an endpoint cannot be added without its documentation. Generated
clients are the measure of the document: every object and enum is a named
component, so generators name each type once (docs/api.md, "Generated clients").
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from api.http import Doc, ErrorSpec, Schema, api, doc
from api.schemas import AUDIENCE_SECURITY, COMPONENTS, SECURITY_SCHEMES, TIME, UUID, closed, ref
from api.webhook_docs import WEBHOOKS, event_schema_name
from api.webhook_docs import operation_id as webhook_operation_id

OPENAPI_VERSION = "3.1.0"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# Refusals of the ``api`` decorator and of api.http's parsing, by what brings them on.
AUTHENTICATION_ERRORS = [(401, "not_authenticated"), (401, "invalid_token"), (401, "token_expired")]
AUDIENCE_ERROR = (403, "forbidden")
CSRF_ERROR = (403, "csrf_failed")
BODY_ERRORS = [
    (400, "malformed_json"), (400, "invalid_json"), (400, "invalid_field"),
    (413, "body_too_large"), (415, "unsupported_media_type"),
]
MISSING_FIELD = (400, "missing_field")
BINARY = {"type": "string", "format": "binary", "description": "the file's bytes"}

DESCRIPTION = """\
Parley's HTTP API: customers (a customer token), agents (an agent token or
session), the host application (the integration key) and external channels
(inbound webhooks). docs/api.md explains the rules behind it.

Bodies are JSON (`Content-Type: application/json`), at most 64 KiB. Every
refusal is a 4xx `{"error": {"code", "detail"}}`; each operation lists the
codes it can answer under each status. A method a path does not list
answers `405 method_not_allowed`. A 5xx is always a bug.

Positions: every write answers the position of its event, every read the
position it is current to; hand a read's position back as `after`, a
write's as `min_position`. Never compute with positions.
"""

OPERATION_ID = re.compile(r"[a-z][A-Za-z0-9]*")
_ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


class Undocumented(Exception):
    """A route or method of api.urls has no ``@doc``."""


def openapi_path(route: str) -> tuple[str, list[str]]:
    """``api/v1/messages/<str:message_id>`` -> (``/api/v1/messages/{message_id}``, [``message_id``])."""
    names = [m["name"] for m in _ROUTE_PARAMETER.finditer(route)]
    return "/" + _ROUTE_PARAMETER.sub(lambda m: "{" + m["name"] + "}", route), names


def _schema(schema: Schema) -> dict[str, Any]:
    if isinstance(schema, str):
        if schema not in COMPONENTS:
            raise KeyError(f"no component schema {schema!r} in api.schemas")
        return ref(schema)
    return schema


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": _schema(schema)}}


def _status_code(spec: ErrorSpec) -> tuple[int, str]:
    if isinstance(spec, tuple):
        return spec
    return spec.status, spec.code


def _error_response(codes: list[str]) -> dict[str, Any]:
    """Every refusal has the one ``Error`` schema (so a generated client has one
    error type); the codes this status can carry are listed beside it, not as an
    enum of their own per operation."""
    return {
        "description": ", ".join(f"`{c}`" for c in codes),
        "content": {"application/json": {"schema": ref("Error")}},
        "x-error-codes": codes,
    }


def _parameter(spec: dict[str, Any], errors: list[tuple[int, str]]) -> dict[str, Any]:
    """The parameter without its ``x-errors``, which join ``errors``."""
    parameter = {k: copy.deepcopy(v) for k, v in spec.items() if k != "x-errors"}
    errors.extend(spec.get("x-errors", ()))
    return parameter


def _errors(view: Callable[..., Any], d: Doc, params: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Every (status, code) the operation can answer, in a stable order."""
    audience = getattr(view, "api_audience", None)
    found: list[tuple[int, str]] = []
    if audience is not None:
        found += AUTHENTICATION_ERRORS
        if audience != "any":
            found.append(AUDIENCE_ERROR)
        if d.method not in SAFE_METHODS:
            found.append(CSRF_ERROR)
    if d.body is not None and d.body_media == "application/json":  # other bodies list their own errors
        found += BODY_ERRORS
        body = COMPONENTS.get(d.body) if isinstance(d.body, str) else d.body
        if body and body.get("required"):
            found.append(MISSING_FIELD)
    found += params
    found += [_status_code(spec) for spec in d.errors]
    return list(dict.fromkeys(found))


def operation(view: Callable[..., Any], d: Doc, path_names: list[str]) -> dict[str, Any]:
    tag = view.__module__.rsplit(".", 1)[-1]
    unknown = set(d.path) - set(path_names)
    if unknown:
        raise Undocumented(f"{view.__module__}.{view.__name__}: @doc names no path parameter {sorted(unknown)}")
    param_errors: list[tuple[int, str]] = []
    parameters = [
        _parameter({"name": name, "in": "path", "required": True, "schema": {"type": "string"}, **d.path.get(name, {})},
                   param_errors)
        for name in path_names
    ] + [_parameter(p, param_errors) for p in d.params]
    if not OPERATION_ID.fullmatch(d.operation_id):
        raise Undocumented(f"{view.__module__}.{view.__name__}: @doc({d.method!r}) needs an operation_id in camelCase "
                           f"(a verb and its object, as claimConversation), not {d.operation_id!r}")
    op: dict[str, Any] = {
        "operationId": d.operation_id,
        "summary": d.summary,
        "tags": [tag],
    }
    if d.description:
        op["description"] = d.description
    if parameters:
        op["parameters"] = parameters
    if d.body is not None:
        op["requestBody"] = {"required": True, "content": {d.body_media: {"schema": _schema(d.body)}}}
    responses: dict[str, Any] = {}
    for status, schema in sorted(d.responses.items()):
        responses[str(status)] = {"description": HTTPStatus(status).phrase}
        if schema is not None:
            responses[str(status)]["content"] = _json(schema)
        elif status in d.media:  # bytes of these types (a file: generators hand it over as bytes)
            responses[str(status)]["content"] = {media: {"schema": BINARY} for media in d.media[status]}
    by_status: dict[int, list[str]] = {}
    for status, code in _errors(view, d, param_errors):
        by_status.setdefault(status, []).append(code)
    for status, codes in sorted(by_status.items()):
        if str(status) in responses:
            raise Undocumented(f"{op['operationId']}: {status} is both a success and an error")
        responses[str(status)] = _error_response(codes)
    op["responses"] = responses
    schemes = d.security if d.security is not None else AUDIENCE_SECURITY[getattr(view, "api_audience", None)]
    op["security"] = [{name: []} for name in schemes]
    return op


def _operations(patterns: Iterable[Any]) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for pattern in patterns:
        if not isinstance(pattern, URLPattern):
            raise Undocumented(f"api.urls may hold only plain routes, not {pattern!r}")
        view = pattern.callback
        docs: dict[str, Doc] = getattr(view, "api_docs", {})
        methods = tuple(getattr(view, "api_methods", docs))
        where = f"{view.__module__}.{view.__name__}"
        if not methods:
            raise Undocumented(f"{where} ({pattern.pattern}) has no @doc")
        missing = [m for m in methods if m not in docs]
        extra = [m for m in docs if m not in methods]
        if missing:
            raise Undocumented(f"{where} ({pattern.pattern}) has no @doc for {missing}")
        if extra:
            raise Undocumented(f"{where} ({pattern.pattern}) has a @doc for {extra}, which api() does not allow")
        path, names = openapi_path(str(pattern.pattern))
        item = paths.setdefault(path, {})
        for method in methods:
            item[method.lower()] = operation(view, docs[method], names)
    return paths


def build(patterns: Iterable[Any] | None = None) -> dict[str, Any]:
    """The document, built afresh from ``patterns`` (default: api.urls)."""
    if patterns is None:
        from api import urls  # here: api.urls imports this module for its route

        patterns = urls.urlpatterns
    paths = _operations(patterns)
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    if len(ids) != len(set(ids)):
        raise Undocumented(f"operationIds are not unique: {sorted(ids)}")
    schemas = copy.deepcopy(COMPONENTS)
    webhooks = _webhooks(schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Parley HTTP API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": settings.PARLEY_PUBLIC_URL, "description": "this deployment (`PARLEY_PUBLIC_URL`)"}],
        "paths": paths,
        "webhooks": webhooks,
        "components": {"schemas": schemas, "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
    }


WEBHOOK_HEADERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": UUID,
     "description": "The event's id (the body's `id`): the same on every retry, so a receiver can drop repeats."},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
     "description": "Unix seconds of this attempt; refuse one far from now (replays)."},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "`v1,<base64 HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>.<raw body>` with the endpoint's "
                    "secret (Standard Webhooks; several, space-separated, while a rotated secret overlaps)."},
]

WEBHOOK_RESPONSES = {
    "200": {"description": "Any 2xx: delivered. Anything else, or no answer within 10 s, is retried with "
                           "exponential backoff for up to 24 hours, with the same `webhook-id`."},
    "410": {"description": "Gone: Parley disables the endpoint and sends it nothing more."},
}


def _webhooks(schemas: dict[str, Any]) -> dict[str, Any]:
    """The ``webhooks`` section from api.webhook_docs' table, adding each type's
    envelope schema (``MessageCreatedEvent``) to ``schemas``."""
    webhooks: dict[str, Any] = {}
    for name, hook in sorted(WEBHOOKS.items()):
        if hook.data not in schemas:
            raise KeyError(f"webhook {name!r}: no component schema {hook.data!r} in api.schemas")
        envelope = event_schema_name(name)
        schemas[envelope] = {
            **closed(["id", "type", "timestamp", "data"], id=UUID, type={"type": "string", "const": name},
                     timestamp=TIME, data=ref(hook.data)),
            "description": f"The body of a `{name}` delivery.",
        }
        webhooks[name] = {"post": {
            "operationId": webhook_operation_id(name),
            "summary": hook.summary,
            "description": hook.description + " POSTed to each endpoint subscribed to `" + name + "` "
            "(`POST /api/v1/webhook-endpoints`), signed as Standard Webhooks says; events about one customer arrive "
            "in log order.",
            "tags": ["webhooks"],
            "parameters": copy.deepcopy(WEBHOOK_HEADERS),
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref(envelope)}}},
            "responses": copy.deepcopy(WEBHOOK_RESPONSES),
            "security": [],
        }}
    return webhooks


@functools.cache
def document() -> dict[str, Any]:
    """The document of this process's code (built once; do not change it)."""
    return build()


@functools.cache
def _document_json() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode("utf-8")


@api(["GET"], None)
@doc("GET", "This document (OpenAPI 3.1)", operation_id="getOpenApiDocument", responses={200: "OpenApiDocument"}, security=[])
def openapi_json(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_document_json(), content_type="application/json")
