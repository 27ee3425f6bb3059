"""What a push carries: the contract's badge payload, its Topic and Urgency. Plain Python.

A push is encrypted into a single aes128gcm record, and push services refuse
bodies over 4096 bytes; 103 of those are encryption overhead, so the largest
plaintext that fits is 3993 bytes. We stay under ``MAX_PAYLOAD_BYTES`` by
cutting the message preview (never the count), whatever the body and name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

#: Plaintext budget, below the 3993 bytes that fit in 4096 encrypted.
MAX_PAYLOAD_BYTES = 3900
#: A notification shows a few lines; longer previews are cut with an ellipsis.
PREVIEW_CHARS = 200
SENDER_NAME_CHARS = 100
ELLIPSIS = "\u2026"

URGENCY_MESSAGE = "high"
URGENCY_BADGE = "low"


def topic_for(customer_id: uuid.UUID | str) -> str:
    """The RFC 8030 Topic of a customer's pushes: 32 base64url characters.

    One topic per customer, so a push service holding an undelivered push
    for a device replaces it with the newer one instead of queueing both.
    A hash, so the topic (visible to the push service) does not reveal the id.
    """
    digest = hashlib.sha256(f"parley.badge:{customer_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:32]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def badge_payload(
    *, unread: int, position: int, message: dict[str, Any] | None = None, limit: int = MAX_PAYLOAD_BYTES
) -> dict[str, Any]:
    """The contract's payload; ``message`` has message_id, sender_name, preview, sent_at.

    The preview is cut to ``PREVIEW_CHARS`` and then, if the encoded payload
    still exceeds ``limit`` bytes (multi-byte characters), further until it fits.
    """
    if message is None:
        return {"type": "badge", "unread": unread, "position": position, "message": None}
    source = str(message.get("preview") or "")
    shown = {
        "message_id": str(message["message_id"]),
        "sender_name": _cut(str(message.get("sender_name") or ""), SENDER_NAME_CHARS),
        "preview": _cut(source, PREVIEW_CHARS),
        "sent_at": message["sent_at"],
    }
    payload = {"type": "badge", "unread": unread, "position": position, "message": shown}
    if len(encode(payload)) <= limit:
        return payload
    # Multi-byte characters and JSON escapes make bytes and characters differ:
    # find the longest cut that fits (a few encodings of a short document).
    low, high = 0, min(len(source), PREVIEW_CHARS)
    while low < high:
        mid = (low + high + 1) // 2
        shown["preview"] = _cut(source, mid)
        if len(encode(payload)) <= limit:
            low = mid
        else:
            high = mid - 1
    shown["preview"] = _cut(source, low) if low else ""
    return payload
