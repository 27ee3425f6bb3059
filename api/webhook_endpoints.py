"""Outbound webhook endpoints, for the host application (integration key).

Rules live in ``outbound.endpoints``; these views only translate.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from api.customers import _require_integration_key
from api.errors import ApiError
from api.http import api, doc, field_str, json_body
from kernel import ids
from outbound.endpoints import (
    EndpointNotFound,
    TooManyEndpoints,
    UnsupportedEventType,
    endpoint_delete,
    endpoint_list,
    endpoint_register,
    endpoint_rotate_secret,
    present_endpoint,
)
from outbound.guard import WebhookUrlNotAllowed

KEY = (401, "invalid_integration_key")
ENDPOINT_PATH = {"endpoint_id": {"schema": {"type": "string"}, "description": "not a UUID: 404"}}


@api(["GET", "POST"], None)
@doc("POST", "Register a webhook endpoint", operation_id="registerWebhookEndpoint", body="WebhookEndpointRegistration", security=["integrationKey"],
     responses={201: "WebhookEndpointSecret"},
     errors=[KEY, WebhookUrlNotAllowed, UnsupportedEventType, TooManyEndpoints, (400, "missing_field")],
     description="The secret is shown once. The URL must be https and resolve to public addresses only.")
@doc("GET", "List the webhook endpoints (without secrets)", operation_id="listWebhookEndpoints", security=["integrationKey"],
     responses={200: "WebhookEndpointList"}, errors=[KEY])
def endpoints(request: HttpRequest) -> JsonResponse:
    _require_integration_key(request)
    if request.method == "GET":
        return JsonResponse({"endpoints": [present_endpoint(e) for e in endpoint_list()]})
    data = json_body(request)
    url = field_str(data, "url", max_length=4096) or ""
    events: Any = data.get("events")
    if events is None:
        raise ApiError(400, "missing_field", "'events' is required")
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise ApiError(400, "invalid_field", "'events' must be a list of event type names")
    created = endpoint_register(url=url, events=events)
    return JsonResponse({"endpoint_id": str(created.endpoint.pk), "secret": created.secret}, status=201)


@api(["DELETE"], None)
@doc("DELETE", "Delete a webhook endpoint and its deliveries", operation_id="deleteWebhookEndpoint", security=["integrationKey"], path=ENDPOINT_PATH,
     responses={204: None}, errors=[KEY, EndpointNotFound])
def endpoint_detail(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    _require_integration_key(request)
    endpoint_delete(endpoint_id=ids.parse_uuid(endpoint_id))
    return HttpResponse(status=204)


@api(["POST"], None)
@doc("POST", "Rotate an endpoint's secret", operation_id="rotateWebhookSecret", security=["integrationKey"], path=ENDPOINT_PATH,
     responses={200: "WebhookEndpointSecret"}, errors=[KEY, EndpointNotFound],
     description="The new secret is shown once; for 24 hours deliveries carry a signature with each secret.")
def rotate_secret(request: HttpRequest, endpoint_id: str) -> JsonResponse:
    _require_integration_key(request)
    eid = ids.parse_uuid(endpoint_id)
    secret = endpoint_rotate_secret(endpoint_id=eid)
    return JsonResponse({"endpoint_id": str(eid), "secret": secret})
