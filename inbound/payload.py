"""The inbound message payload: parsing and validation. Plain Python only.

``{"event_id"?, "customer": {"external_id", "name"?}, "text", "sent_at"?}``.
Unknown fields are ignored, so providers may send more than we read.
Every error names the field and uses the error codes of the rest of the API.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from chat.commands import clean_body
from chat.errors import InvalidBody
from kernel.errors import DomainError

MAX_EVENT_ID_CHARS = 200
# The customers context stores external ids of at most 200 characters; ours
# are stored as "<source>:<external_id>" with a source of at most 32.
MAX_EXTERNAL_ID_CHARS = 160
MAX_NAME_CHARS = 200
# How far the channel's own sent_at may be from the time Parley receives the
# message: a day late (a provider's retries), a few minutes early (clocks).
# It is kept as the channel's claim; the message's time is Parley's own.
SENT_AT_MAX_AGE = dt.timedelta(hours=24)
SENT_AT_MAX_AHEAD = dt.timedelta(minutes=5)

# RFC 3339 date-time with a mandatory offset (fromisoformat alone would also
# take dates without a time, week dates and naive times).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


class InvalidPayload(DomainError):
    """A delivery whose body cannot become a message."""

    code = "invalid_field"


@dataclass(frozen=True)
class InboundMessage:
    """A validated inbound message, as the provider described it."""

    event_id: str | None
    external_id: str
    name: str | None
    text: str
    sent_at: dt.datetime | None


def parse(raw: bytes, *, now: dt.datetime | None = None) -> InboundMessage:
    """Validate a raw request body; raise InvalidPayload saying what is wrong.

    ``now``: the time of receipt, that the channel's ``sent_at`` must be
    close to (default: the clock's)."""
    data = _load(raw)
    customer = data.get("customer")
    if customer is None:
        raise InvalidPayload("'customer' is required", code="missing_field")
    if not isinstance(customer, dict):
        raise InvalidPayload("'customer' must be an object", code="invalid_field")
    event_id = _string(data, "event_id", required=False, max_chars=MAX_EVENT_ID_CHARS)
    if event_id is not None and not event_id.strip():
        raise InvalidPayload("'event_id' must not be blank", code="invalid_field")
    external_id = (_string(customer, "external_id", prefix="customer.", max_chars=None) or "").strip()
    if not external_id:
        raise InvalidPayload("'customer.external_id' must not be blank", code="invalid_field")
    if len(external_id) > MAX_EXTERNAL_ID_CHARS:
        raise InvalidPayload(f"'customer.external_id' is longer than {MAX_EXTERNAL_ID_CHARS} characters", code="invalid_field")
    name = (_string(customer, "name", prefix="customer.", required=False, max_chars=None) or "").strip()
    if len(name) > MAX_NAME_CHARS:
        raise InvalidPayload(f"'customer.name' is longer than {MAX_NAME_CHARS} characters", code="invalid_field")
    text = _string(data, "text", max_chars=None) or ""
    try:
        text = clean_body(text)
    except InvalidBody as exc:
        raise InvalidPayload(exc.detail, code=exc.code) from None
    sent_at_raw = _string(data, "sent_at", required=False, max_chars=64)
    sent_at = parse_time(sent_at_raw, "sent_at") if sent_at_raw is not None else None
    if sent_at is not None:
        _check_recent(sent_at, now or dt.datetime.now(dt.timezone.utc))
    return InboundMessage(event_id=event_id, external_id=external_id, name=name or None, text=text, sent_at=sent_at)


def _check_recent(sent_at: dt.datetime, now: dt.datetime) -> None:
    if sent_at < now - SENT_AT_MAX_AGE:
        raise InvalidPayload("'sent_at' is more than 24 hours before now", code="invalid_field")
    if sent_at > now + SENT_AT_MAX_AHEAD:
        raise InvalidPayload("'sent_at' is more than 5 minutes after now", code="invalid_field")


def parse_time(value: str, name: str) -> dt.datetime:
    """An RFC 3339 time with an offset, as an aware UTC datetime."""
    if not _RFC3339.fullmatch(value):
        raise InvalidPayload(f"'{name}' must be an RFC 3339 time with an offset, e.g. 2025-01-31T09:30:00Z", code="invalid_field")
    try:
        # Digits beyond microseconds are truncated by fromisoformat.
        parsed = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPayload(f"'{name}' is not a valid date and time", code="invalid_field") from None
    if parsed.tzinfo is None:  # pragma: no cover - the pattern requires an offset
        raise InvalidPayload(f"'{name}' must carry a UTC offset", code="invalid_field")
    try:
        return parsed.astimezone(dt.timezone.utc)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past the last representable moment
        raise InvalidPayload(f"'{name}' is out of range", code="invalid_field") from None


def _load(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    # RecursionError: deeply nested arrays are valid JSON but exhaust the parser.
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidPayload("the body is not valid UTF-8 JSON", code="malformed_json") from None
    if not isinstance(data, dict):
        raise InvalidPayload("the body must be a JSON object", code="invalid_json")
    return data


def _string(
    data: dict[str, Any],
    key: str,
    *,
    prefix: str = "",
    required: bool = True,
    max_chars: int | None,
) -> str | None:
    name = prefix + key
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidPayload(f"'{name}' is required", code="missing_field")
        return None
    if not isinstance(value, str):
        raise InvalidPayload(f"'{name}' must be a string", code="invalid_field")
    if max_chars is not None and len(value) > max_chars:
        raise InvalidPayload(f"'{name}' is longer than {max_chars} characters", code="invalid_field")
    # JSON can encode both, but neither can be stored: PostgreSQL text refuses
    # NUL, and a lone surrogate ("\ud800") is not encodable as UTF-8.
    if "\x00" in value:
        raise InvalidPayload(f"'{name}' must not contain NUL characters", code="invalid_field")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload(f"'{name}' is not valid Unicode text", code="invalid_field") from None
    return value
