"""HTTP adapter for inbound webhooks: verify, then parse, then receive.

Order matters: the source and the signature are checked on the raw bytes
before the body is parsed or anything is written, so an unauthenticated
caller can make Parley do no more than one bounded read and a few HMACs.

Every delivery counts by source and result (``parley_inbound_webhooks_total``:
accepted, duplicate, or the code it was refused with); a source that is not
configured counts as "unknown", so made-up sources cannot grow new series.
"""

from __future__ import annotations

import logging
import time

from django.http import HttpRequest, JsonResponse

from api.errors import ApiError
from api.http import api, doc
from inbound import signatures
from inbound.payload import InvalidPayload, parse
from inbound.services import Receipt, inbound_message_receive
from inbound.sources import MAX_SOURCE_CHARS, secrets_for
from kernel.errors import DomainError
from observability.metrics import inbound_delivery

logger = logging.getLogger(__name__)

# Room for the largest valid message (4000 characters, each escaped as a
# 12-byte surrogate pair in the worst case) plus the other fields.
MAX_BODY_BYTES = 64 * 1024


def _read_body(request: HttpRequest) -> bytes:
    """At most MAX_BODY_BYTES of body, refusing a larger one before reading it all."""
    too_large = ApiError(413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")
    declared = str(request.META.get("CONTENT_LENGTH") or "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    # Read one byte more than allowed, so a body without (or with a lying)
    # Content-Length is still caught without reading it to the end.
    raw = request.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    return raw


@api(["POST"], None)
@doc("POST", "Deliver one customer message from an external channel", operation_id="receiveInboundMessage", body="InboundMessage",
     responses={202: "InboundReceipt"}, security=["webhookSignature"],
     path={"source": {"schema": {"type": "string", "pattern": f"^[A-Za-z0-9_.-]{{1,{MAX_SOURCE_CHARS}}}$"},
                      "description": "a source configured in INBOUND_WEBHOOK_SECRETS"}},
     errors=[(404, "unknown_source"), signatures.InvalidSignature, signatures.StaleSignature, (400, "invalid_body")],
     description="Stored once however many copies arrive; every copy answers the same `message_id`. "
     "The signature is checked on the raw bytes before the body is parsed (docs/webhooks.md).")
def receive(request: HttpRequest, source: str) -> JsonResponse:
    """``POST /webhooks/v1/inbound/{source}``: store one customer message, once."""
    secrets = secrets_for(source)
    try:
        receipt = _receive(request, source, secrets)
    except Exception as exc:
        inbound_delivery(source, exc.code if isinstance(exc, DomainError) else "error", configured=bool(secrets))
        raise
    inbound_delivery(source, "duplicate" if receipt.duplicate else "accepted", configured=True)
    return JsonResponse({"message_id": str(receipt.message_id), "duplicate": receipt.duplicate}, status=202)


def _receive(request: HttpRequest, source: str, secrets: list[str]) -> Receipt:
    if not secrets:
        raise ApiError(404, "unknown_source", "no inbound webhook source is configured under this name")
    raw = _read_body(request)
    try:
        signatures.verify(request.headers.get(signatures.HEADER), raw, secrets, now=time.time())
    except signatures.SignatureError as exc:
        logger.warning("inbound webhook from %s refused: %s", source, exc.detail)
        raise ApiError(401, exc.code, exc.detail) from None
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        message = parse(raw)
    except InvalidPayload as exc:
        raise ApiError(400, exc.code, exc.detail) from None
    return inbound_message_receive(source=source, raw_body=raw, message=message)
