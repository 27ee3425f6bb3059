"""The host-application API: server-to-server, with PARLEY_INTEGRATION_KEY."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from accounts.tokens import issue_customer_token
from api.errors import ApiError
from api.http import api, doc, field_str, json_body, parse_uuid
from api.schemas import UUID_PATH
from customers.services import CustomerNotFound, customer_get, customer_register, customer_update


def has_integration_key(request: HttpRequest) -> bool:
    """The request carries the host application's key (never true while none is configured)."""
    expected = settings.PARLEY_INTEGRATION_KEY
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


def _require_integration_key(request: HttpRequest) -> None:
    if not has_integration_key(request):
        raise ApiError(401, "invalid_integration_key", "a valid integration key is required")


# What the host application can be refused, besides the body's own errors (api.openapi adds those).
DETAILS_ERRORS = [(401, "invalid_integration_key"), (400, "invalid_name"), (400, "invalid_email"), (400, "invalid_phone")]


@api(["POST"], None)
@doc("POST", "Register a customer (or find them by external_id) and issue a customer token", operation_id="registerCustomer",
     body="CustomerRegistration", responses={201: "CustomerToken", 200: "CustomerToken"}, security=["integrationKey"],
     errors=[*DETAILS_ERRORS, (400, "invalid_external_id")],
     description="The same `external_id` again answers 200 with the same customer and a fresh token, and changes "
     "nothing (use PATCH).")
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


@api(["GET", "PATCH"], None)
@doc("GET", "A customer's contact details", operation_id="getCustomer", path={"customer_id": UUID_PATH}, responses={200: "ContactDetails"},
     security=["integrationKey"], errors=[(401, "invalid_integration_key"), CustomerNotFound],
     description="An erased customer (docs/privacy.md) answers 404, like one that never was.")
@doc("PATCH", "Change a customer's contact details", operation_id="updateCustomer", body="ContactDetailsUpdate", path={"customer_id": UUID_PATH},
     responses={200: "ContactDetails"}, security=["integrationKey"],
     errors=[*DETAILS_ERRORS, CustomerNotFound])
def customer_detail(request: HttpRequest, customer_id: str) -> JsonResponse:
    _require_integration_key(request)
    if request.method == "GET":
        customer = customer_get(customer_id=parse_uuid(customer_id, "customer_id"))
        return JsonResponse(
            {"customer_id": str(customer.id), "name": customer.name, "email": customer.email, "phone": customer.phone}
        )
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
