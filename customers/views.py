"""The host-application API: server-to-server, with PARLEY_INTEGRATION_KEY."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from customers.services import customer_register, customer_update
from customers.tokens import issue_customer_token
from project.http import ApiError, api, field_str, json_body, parse_uuid


def _require_integration_key(request: HttpRequest) -> None:
    expected = settings.PARLEY_INTEGRATION_KEY
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(401, "invalid_integration_key", "a valid integration key is required")


@api(["POST"], None)
def customers(request: HttpRequest) -> JsonResponse:
    _require_integration_key(request)
    data = json_body(request)
    reg = customer_register(
        name=field_str(data, "name", max_length=200) or "",
        email=field_str(data, "email", required=False, max_length=254) or "",
        phone=field_str(data, "phone", required=False, max_length=32) or "",
        external_id=field_str(data, "external_id", required=False, max_length=200),
        actor="integration",
    )
    token = issue_customer_token(reg.customer.id)
    return JsonResponse({"customer_id": str(reg.customer.id), "token": token}, status=201 if reg.created else 200)


@api(["PATCH"], None)
def customer_detail(request: HttpRequest, customer_id: str) -> JsonResponse:
    _require_integration_key(request)
    data = json_body(request)
    customer = customer_update(
        customer_id=parse_uuid(customer_id, "customer_id"),
        name=field_str(data, "name", required=False, max_length=200),
        email=field_str(data, "email", required=False, max_length=254),
        phone=field_str(data, "phone", required=False, max_length=32),
        actor="integration",
    )
    return JsonResponse(
        {"customer_id": str(customer.id), "name": customer.name, "email": customer.email, "phone": customer.phone}
    )
