"""The push payload, Topic and Retry-After rules, without a database."""

from __future__ import annotations

import email.utils
import json
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.payload import MAX_PAYLOAD_BYTES, PREVIEW_CHARS, badge_payload, encode, topic_for
from notifications.transport import parse_retry_after

MESSAGE = {
    "message_id": "7b3f2d9e-3c1a-4f7e-9a51-2f0f1b8d6a11",
    "sender_name": "Grace",
    "preview": "Your order has shipped",
    "sent_at": "2026-01-02T03:04:05Z",
}


def test_a_badge_only_payload_is_exactly_the_contracts_shape():
    assert badge_payload(unread=0, position=42) == {"type": "badge", "unread": 0, "position": 42, "message": None}


def test_a_message_payload_carries_the_preview_as_is_when_short():
    p = badge_payload(unread=2, position=7, message=MESSAGE)
    assert p == {"type": "badge", "unread": 2, "position": 7, "message": MESSAGE}


def test_a_long_preview_is_cut_with_an_ellipsis():
    p = badge_payload(unread=1, position=1, message={**MESSAGE, "preview": "x" * 4000})
    assert len(p["message"]["preview"]) == PREVIEW_CHARS
    assert p["message"]["preview"].endswith("\u2026")


@given(
    preview=st.text(min_size=0, max_size=4000),
    name=st.text(min_size=0, max_size=300),
    unread=st.integers(min_value=0, max_value=10**9),
)
def test_any_payload_fits_the_push_size_limit(preview, name, unread):
    p = badge_payload(unread=unread, position=2**62, message={**MESSAGE, "preview": preview, "sender_name": name})
    assert len(encode(p)) <= MAX_PAYLOAD_BYTES
    assert p["unread"] == unread  # the count is never what gets cut
    assert json.loads(encode(p)) == p


def test_a_tight_limit_cuts_multibyte_previews_by_bytes():
    p = badge_payload(unread=1, position=1, message={**MESSAGE, "preview": "\U0001f600" * 200}, limit=300)
    assert len(encode(p)) <= 300
    assert p["message"]["preview"].startswith("\U0001f600")


def test_the_topic_is_32_base64url_characters_fixed_per_customer():
    a, b = uuid.uuid4(), uuid.uuid4()
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", topic_for(a))
    assert topic_for(a) == topic_for(str(a))
    assert topic_for(a) != topic_for(b)
    assert str(a) not in topic_for(a)


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), ("0", 0.0), (None, None), ("soon", None), ("", None)])
def test_retry_after_in_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date():
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(90)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0
