"""The customer's rights: erasure and export (docs/privacy.md).

Erasure is for the host application (integration key) or a staff agent;
export for the host application, which answers the customer's access request.
``erase_customer`` is the one way a customer is erased: this API, the
retention timer and ``erase_inactive`` (project.privacy) all call it.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, JsonResponse

from accounts.popouts import popout_sign_out
from api.customers import _require_integration_key, has_integration_key
from api.http import api, authenticated, doc, parse_uuid
from api.schemas import UUID_PATH
from attachments.services import attachments_erase
from chat.ports import customer_directory
from customers.services import CustomerNotFound, customer_erase
from eventstore.keys import SubjectErased
from readmodels.export import NothingToExport, customer_export


def erase_customer(customer_id: uuid.UUID, *, reason: str, actor: str) -> bool:
    """Erase the customer everywhere; False if they were erased already.

    The customers context destroys the key, deletes the contact record and
    publishes CustomerErased, which every read model and process manager
    follows; the directory's cache forgets them at once; the attachments
    context deletes their files (again on a second erase: an upload may have
    raced the first); the widget's pop-out windows are signed out (their
    devices go with every other).
    """
    erased = customer_erase(customer_id=customer_id, reason=reason, actor=actor)
    customer_directory().forget(customer_id)
    attachments_erase(customer_id=customer_id)
    popout_sign_out(customer_id=customer_id)
    return erased


def _integration_or_agent(request: HttpRequest) -> str:
    """Who erases: "integration" (the integration key) or "agent:<id>" (a staff agent's token or cookie)."""
    if has_integration_key(request):
        return "integration"
    return f"agent:{authenticated(request, 'agent').id}"


@api(["POST"], None)
@doc("POST", "Erase a customer: their contact details, messages, attachments and search entries", operation_id="eraseCustomer",
     path={"customer_id": UUID_PATH}, responses={202: "Erasure"}, security=["integrationKey", "agentToken", "agentSession"],
     errors=[(401, "not_authenticated"), (403, "forbidden"), CustomerNotFound],
     description="Destroys the customer's key, so the log's copy of their data can no longer be read, and every "
     "view forgets them within seconds. A second erase answers 202 with `erased: false` and changes nothing.")
def erase(request: HttpRequest, customer_id: str) -> JsonResponse:
    actor = _integration_or_agent(request)
    customer = parse_uuid(customer_id, "customer_id")
    erased = erase_customer(customer, reason="request", actor=actor)
    return JsonResponse({"customer_id": str(customer), "erased": erased}, status=202)


@api(["GET"], None)
@doc("GET", "Everything Parley holds about a customer, as JSON (an access request)", operation_id="exportCustomer",
     path={"customer_id": UUID_PATH}, responses={200: "CustomerExport"}, security=["integrationKey"],
     errors=[(401, "invalid_integration_key"), NothingToExport])
def export(request: HttpRequest, customer_id: str) -> JsonResponse:
    _require_integration_key(request)
    try:
        data = customer_export(parse_uuid(customer_id, "customer_id"))
    except SubjectErased:
        raise NothingToExport(parse_uuid(customer_id, "customer_id")) from None
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})
