"""Parsing and validating the inbound message payload (no database)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from inbound.payload import MAX_EXTERNAL_ID_CHARS, InboundMessage, InvalidPayload, parse, parse_time

UTC = dt.timezone.utc


def raw(**fields: object) -> bytes:
    body: dict[str, object] = {"customer": {"external_id": "+441234"}, "text": "hello"}
    body.update(fields)
    return json.dumps(body).encode()


def test_a_minimal_payload_parses_with_defaults():
    assert parse(raw()) == InboundMessage(
        event_id=None, external_id="+441234", name=None, text="hello", sent_at=None
    )


def test_every_field_is_read_cleaned_and_unknown_fields_are_ignored():
    message = parse(
        raw(
            event_id="evt_1",
            customer={"external_id": "  +441234 ", "name": " Ada ", "avatar": "x"},
            text="  hello  ",
            sent_at="2025-01-31T10:30:00+01:00",
            attachments=[],
        ),
        now=dt.datetime(2025, 1, 31, 12, 0, tzinfo=UTC),
    )
    assert message == InboundMessage(
        event_id="evt_1",
        external_id="+441234",
        name="Ada",
        text="hello",
        sent_at=dt.datetime(2025, 1, 31, 9, 30, tzinfo=UTC),
    )


def test_null_optional_fields_count_as_absent_and_a_blank_name_as_no_name():
    message = parse(raw(event_id=None, sent_at=None, customer={"external_id": "c1", "name": "  "}))
    assert (message.event_id, message.sent_at, message.name) == (None, None, None)


def test_a_text_of_exactly_4000_characters_is_accepted():
    assert len(parse(raw(text="x" * 4000)).text) == 4000


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe{}", "malformed_json"),
        (b"[" * 50_000 + b"]" * 50_000, "malformed_json"),
        (b"[1, 2]", "invalid_json"),
        (b'"text"', "invalid_json"),
        (b'{"text": "hi"}', "missing_field"),
        (json.dumps({"customer": "c1", "text": "hi"}).encode(), "invalid_field"),
        (json.dumps({"customer": {}, "text": "hi"}).encode(), "missing_field"),
        (raw(customer={"external_id": 42}), "invalid_field"),
        (raw(customer={"external_id": "   "}), "invalid_field"),
        (raw(customer={"external_id": "x" * (MAX_EXTERNAL_ID_CHARS + 1)}), "invalid_field"),
        (raw(customer={"external_id": "c1", "name": ["Ada"]}), "invalid_field"),
        (raw(customer={"external_id": "c1", "name": "x" * 201}), "invalid_field"),
        (json.dumps({"customer": {"external_id": "c1"}}).encode(), "missing_field"),
        (raw(text=42), "invalid_field"),
        (raw(text="   "), "invalid_body"),
        (raw(text="x" * 4001), "invalid_body"),
        (raw(text="nul \u0000 inside"), "invalid_field"),
        (b'{"customer": {"external_id": "c1"}, "text": "lone \\ud800 surrogate"}', "invalid_field"),
        (raw(event_id=17), "invalid_field"),
        (raw(event_id=""), "invalid_field"),
        (raw(event_id="e" * 201), "invalid_field"),
        (raw(sent_at=1738315800), "invalid_field"),
        (raw(sent_at="2025-01-31T09:30:00"), "invalid_field"),
        (raw(sent_at="yesterday"), "invalid_field"),
        (raw(sent_at="2025-02-30T09:30:00Z"), "invalid_field"),
    ],
)
def test_a_bad_payload_is_refused_with_a_precise_code(body, code):
    with pytest.raises(InvalidPayload) as caught:
        parse(body, now=dt.datetime(2025, 1, 31, 12, 0, tzinfo=UTC))
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-31T09:30:00Z", dt.datetime(2025, 1, 31, 9, 30, tzinfo=UTC)),
        ("2025-01-31t09:30:00z", dt.datetime(2025, 1, 31, 9, 30, tzinfo=UTC)),
        ("2025-01-31 04:30:00-05:00", dt.datetime(2025, 1, 31, 9, 30, tzinfo=UTC)),
        ("2025-01-31T09:30:00.123456789+00:00", dt.datetime(2025, 1, 31, 9, 30, 0, 123456, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_with_an_offset_become_aware_utc_datetimes(value, expected):
    parsed = parse_time(value, "sent_at")
    assert parsed == expected
    assert parsed.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "value",
    ["2025-01-31", "2025-01-31T09:30", "2025-01-31T09:30:00", "2025-W05-5T09:30:00Z", "2025-01-31T09:30:00Z\n",
     "\u0662025-01-31T09:30:00Z", "2025-01-31T09:30:00+24:00",
     "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"],
)
def test_naive_partial_or_odd_times_are_refused(value):
    with pytest.raises(InvalidPayload):
        parse_time(value, "sent_at")


@pytest.mark.parametrize("sent_at,allowed", [
    ("2025-01-30T12:00:00Z", True),   # exactly a day before receipt
    ("2025-01-30T11:59:59Z", False),  # more than a day
    ("2025-01-31T12:05:00Z", True),   # five minutes ahead (clocks differ)
    ("2025-01-31T12:05:01Z", False),
    ("9999-12-31T23:59:59Z", False),
])
def test_the_channels_sent_at_must_be_within_a_day_before_receipt_and_minutes_after(sent_at, allowed):
    now = dt.datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    if allowed:
        assert parse(raw(sent_at=sent_at), now=now).sent_at is not None
    else:
        with pytest.raises(InvalidPayload, match="sent_at"):
            parse(raw(sent_at=sent_at), now=now)
