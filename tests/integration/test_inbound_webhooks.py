"""The Inbound webhooks section of the contract, through HTTP, one request at a time.

Concurrent copies are in test_inbound_concurrency.py; the helpers here act
as a provider that signs its deliveries.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
from django.test import Client

from api.inbound import MAX_BODY_BYTES
from customers.models import Customer
from eventstore.events import Cursor, encode
from eventstore.models import StoredEvent
from eventstore.store import EventStore
from inbound.models import InboundDelivery
from inbound.signatures import header_value

pytestmark = pytest.mark.django_db(transaction=True)

SOURCE = "sms"
SECRET = "whsec_sms_current"
UNSIGNED = object()


@pytest.fixture(autouse=True)
def webhook_secrets(settings: Any) -> None:
    settings.INBOUND_WEBHOOK_SECRETS = {SOURCE: [SECRET], "mail": ["whsec_mail"]}


def payload(
    event_id: str | None = "evt_1",
    external_id: str = "+441234567",
    text: str = "Hello, I need help",
    **extra: Any,
) -> bytes:
    body: dict[str, Any] = {"customer": {"external_id": external_id}, "text": text, **extra}
    if event_id is not None:
        body["event_id"] = event_id
    return json.dumps(body).encode()


def deliver(
    raw: bytes,
    *,
    source: str = SOURCE,
    secrets: tuple[str, ...] = (SECRET,),
    t: int | None = None,
    header: object = None,
    client: Client | None = None,
    content_type: str = "application/json",
) -> Any:
    """POST ``raw`` as the provider would: signed now with ``secrets`` unless ``header`` says otherwise."""
    extra: dict[str, Any] = {}
    if header is None:
        header = header_value(secrets, int(time.time()) if t is None else t, raw)
    if header is not UNSIGNED:
        extra["HTTP_X_PARLEY_SIGNATURE"] = header
    return (client or Client()).post(f"/webhooks/v1/inbound/{source}", raw, content_type=content_type, **extra)


def messages_sent() -> list[dict[str, Any]]:
    """The MessageSent events as the log reads them back (their bodies are sealed in the table)."""
    return [encode(r.event) for r in EventStore().read_all(Cursor.start(), limit=10_000) if r.event_type == "MessageSent"]


def assert_nothing_stored() -> None:
    assert StoredEvent.objects.count() == 0
    assert InboundDelivery.objects.count() == 0
    assert Customer.objects.count() == 0


# -- accepted deliveries ----------------------------------------------------------------


def test_a_signed_delivery_stores_one_customer_message_and_answers_202():
    r = deliver(payload(text="  Hello, I need help  ", customer_name="ignored"))
    assert r.status_code == 202
    body = r.json()
    assert body["duplicate"] is False
    [sent] = messages_sent()
    assert sent["message_id"] == body["message_id"]
    assert sent["body"] == "Hello, I need help"
    customer = Customer.objects.get()
    assert customer.external_id == f"{SOURCE}:+441234567"
    assert (sent["customer_id"], sent["sender_kind"], sent["sender_id"]) == (
        str(customer.id), "customer", str(customer.id)
    )
    claim = InboundDelivery.objects.get()
    assert (claim.source, claim.key, str(claim.message_id)) == (SOURCE, "evt_1", body["message_id"])


def test_a_redelivery_answers_the_same_message_id_as_a_duplicate_and_appends_nothing():
    raw = payload()
    first, again = deliver(raw), deliver(raw)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
    assert len(messages_sent()) == 1
    assert InboundDelivery.objects.count() == 1


def test_the_event_id_identifies_a_delivery_even_if_a_retry_changes_the_body():
    first = deliver(payload(event_id="evt_9", text="first wording", attempt=1))
    again = deliver(payload(event_id="evt_9", text="first wording", attempt=2))
    assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
    assert len(messages_sent()) == 1


def test_without_an_event_id_the_raw_body_hash_is_the_key():
    raw = payload(event_id=None, text="no id here")
    first, again = deliver(raw), deliver(raw)
    assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
    # Other bytes are another delivery, even with the same text.
    other = deliver(payload(event_id=None, text="no id here", sent_at=recent(minutes=1)))
    assert other.json()["duplicate"] is False
    assert other.json()["message_id"] != first.json()["message_id"]
    assert len(messages_sent()) == 2
    assert set(InboundDelivery.objects.values_list("key_kind", flat=True)) == {"body_sha256"}


def test_two_different_events_with_the_same_text_are_both_stored():
    a = deliver(payload(event_id="evt_a", text="ok"))
    b = deliver(payload(event_id="evt_b", text="ok"))
    assert a.json()["duplicate"] is b.json()["duplicate"] is False
    assert a.json()["message_id"] != b.json()["message_id"]
    assert sorted(m["body"] for m in messages_sent()) == ["ok", "ok"]
    assert Customer.objects.count() == 1


def test_the_same_event_id_on_two_sources_is_two_deliveries_and_the_same_external_id_two_customers():
    a = deliver(payload(event_id="evt_1", external_id="alice"))
    b = deliver(payload(event_id="evt_1", external_id="alice"), source="mail", secrets=("whsec_mail",))
    assert a.json()["duplicate"] is b.json()["duplicate"] is False
    assert a.json()["message_id"] != b.json()["message_id"]
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["mail:alice", "sms:alice"]


def test_a_known_customer_is_reused_and_a_missing_name_defaults_to_the_external_id():
    deliver(payload(event_id="evt_1"))
    deliver(payload(event_id="evt_2", customer={"external_id": "+441234567", "name": "Later Name"}))
    customer = Customer.objects.get()
    assert customer.name == "+441234567"
    assert {m["customer_id"] for m in messages_sent()} == {str(customer.id)}
    assert StoredEvent.objects.filter(event_type="CustomerRegistered").count() == 1


def test_the_name_given_on_first_contact_names_the_customer_and_the_sender():
    deliver(json.dumps({"customer": {"external_id": "c7", "name": "Ada Lovelace"}, "text": "hi"}).encode())
    assert Customer.objects.get().name == "Ada Lovelace"
    assert messages_sent()[0]["sender_name"] == "Ada Lovelace"


def recent(*, minutes: float = 0, offset_hours: int = 0) -> str:
    """An RFC 3339 time ``minutes`` ago, written with a UTC offset of ``offset_hours``."""
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)).astimezone(zone).isoformat()


def test_the_channels_sent_at_is_kept_as_its_claim_in_utc_beside_the_servers_own_time():
    before = dt.datetime.now(dt.timezone.utc)
    claim = recent(minutes=90, offset_hours=1)
    deliver(payload(sent_at=claim))
    event = messages_sent()[0]
    kept = dt.datetime.fromisoformat(event["channel_sent_at"])
    assert kept == dt.datetime.fromisoformat(claim) and kept.utcoffset() == dt.timedelta(0)
    # The message's own time, that conversations are ordered by, is Parley's.
    assert dt.datetime.fromisoformat(event["sent_at"]) >= before


@pytest.mark.parametrize("claim", ["9999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "far_future", "day_old"])
def test_a_sent_at_far_from_now_is_refused_and_stores_nothing(claim):
    now = dt.datetime.now(dt.timezone.utc)
    value = {"far_future": (now + dt.timedelta(minutes=10)).isoformat(),
             "day_old": (now - dt.timedelta(hours=25)).isoformat()}.get(claim, claim)
    r = deliver(payload(sent_at=value))
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_field")
    assert "sent_at" in r.json()["error"]["detail"]
    assert_nothing_stored()


def test_a_conversation_cannot_be_pinned_to_the_top_by_a_claimed_time(agent, project):
    # Even a claim at the edge of the bound orders by the server's time.
    deliver(payload(event_id="early", external_id="pinned", sent_at=recent(minutes=-4), text="from the future"))
    deliver(payload(event_id="late", external_id="later", text="a later message"))
    project()
    listed = agent.get("/api/v1/conversations").json()["conversations"]
    assert [c["last_message"]["preview"] for c in listed] == ["a later message", "from the future"]


def test_a_text_of_exactly_4000_characters_is_accepted():
    assert deliver(payload(text="é" * 4000)).status_code == 202


def test_a_message_id_is_derived_from_the_key_not_chosen_at_random():
    first = deliver(payload(event_id="evt_42")).json()["message_id"]
    assert uuid.UUID(first).version == 5


def test_a_delivery_that_fails_midway_leaves_no_claim_so_the_retry_is_stored(monkeypatch):
    import inbound.services

    def broken_append(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    raw = payload(event_id="evt_retry")
    with monkeypatch.context() as patch:
        patch.setattr(inbound.services, "send_message", broken_append)
        with pytest.raises(RuntimeError):
            deliver(raw)
    assert_nothing_stored()
    retry = deliver(raw)
    assert (retry.status_code, retry.json()["duplicate"]) == (202, False)
    assert len(messages_sent()) == 1


def test_without_its_claim_row_a_redelivery_is_still_recognised_by_the_chat_command():
    # The derived message and event ids are the second line of defence: if
    # claim rows were ever purged, a redelivery still appends nothing.
    first = deliver(payload(event_id="evt_7", text="original")).json()
    InboundDelivery.objects.all().delete()
    same = deliver(payload(event_id="evt_7", text="original"))
    InboundDelivery.objects.all().delete()
    changed = deliver(payload(event_id="evt_7", text="edited by the provider"))
    for r in (same, changed):
        assert (r.status_code, r.json()) == (202, {"message_id": first["message_id"], "duplicate": True})
    assert [m["body"] for m in messages_sent()] == ["original"]


async def test_under_asgi_the_raw_body_is_read_verified_and_capped_the_same_way():
    # Requests refused before any write, so no database connection is left
    # behind in asgiref's worker threads.
    from django.test import AsyncClient

    client = AsyncClient()
    path = f"/webhooks/v1/inbound/{SOURCE}"

    async def post(raw: bytes) -> Any:
        header = header_value([SECRET], int(time.time()), raw)
        return await client.post(path, raw, content_type="application/json", headers={"X-Parley-Signature": header})

    verified_but_blank = await post(payload(text="   "))
    assert (verified_but_blank.status_code, verified_but_blank.json()["error"]["code"]) == (400, "invalid_body")
    too_large = await post(payload(padding="p" * MAX_BODY_BYTES))
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "body_too_large")


# -- secret rotation ------------------------------------------------------------------------


def test_during_a_rotation_either_configured_secret_is_accepted(settings):
    settings.INBOUND_WEBHOOK_SECRETS = {SOURCE: ["whsec_old", "whsec_new"]}
    assert deliver(payload(event_id="evt_old"), secrets=("whsec_old",)).status_code == 202
    assert deliver(payload(event_id="evt_new"), secrets=("whsec_new",)).status_code == 202
    assert len(messages_sent()) == 2


def test_a_header_with_several_v1_values_is_accepted_if_any_matches(settings):
    settings.INBOUND_WEBHOOK_SECRETS = {SOURCE: ["whsec_new"]}
    r = deliver(payload(), secrets=("whsec_retired", "whsec_new"))
    assert r.status_code == 202


def test_a_secret_removed_from_the_configuration_no_longer_verifies(settings):
    settings.INBOUND_WEBHOOK_SECRETS = {SOURCE: ["whsec_new"]}
    r = deliver(payload(), secrets=("whsec_old",))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_signature")
    assert_nothing_stored()


# -- refused deliveries: nothing is stored -------------------------------------------------


def _other_body_signature(raw: bytes) -> str:
    return header_value([SECRET], int(time.time()), raw + b" ")


@pytest.mark.parametrize(
    ("case", "kwargs", "status", "code"),
    [
        ("no signature header", {"header": UNSIGNED}, 401, "invalid_signature"),
        ("garbage header", {"header": "sha256=abc"}, 401, "invalid_signature"),
        ("wrong secret", {"secrets": ("whsec_guess",)}, 401, "invalid_signature"),
        ("another source's secret", {"secrets": ("whsec_mail",)}, 401, "invalid_signature"),
        ("an hour old", {"t": int(time.time()) - 3600}, 401, "stale_signature"),
        ("an hour ahead", {"t": int(time.time()) + 3600}, 401, "stale_signature"),
        ("forged and old", {"secrets": ("whsec_guess",), "t": 1_000_000_000}, 401, "invalid_signature"),
        ("unknown source", {"source": "fax"}, 404, "unknown_source"),
        ("not JSON", {"content_type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
def test_a_delivery_that_fails_verification_is_refused_and_stores_nothing(case, kwargs, status, code):
    r = deliver(payload(), **kwargs)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), case
    assert set(r.json()["error"]) == {"code", "detail"}
    assert_nothing_stored()


def test_a_signature_over_other_bytes_is_refused():
    raw = payload()
    r = deliver(raw, header=_other_body_signature(raw))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_signature")
    assert_nothing_stored()


def test_a_source_whose_configured_name_is_unusable_is_unknown(settings):
    settings.INBOUND_WEBHOOK_SECRETS = {"sms:eu": ["s"]}
    r = deliver(payload(), source="sms:eu", secrets=("s",))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_source")
    assert_nothing_stored()


def test_the_system_check_reports_an_unusable_source_name(settings):
    from inbound.checks import check_source_names

    settings.INBOUND_WEBHOOK_SECRETS = {"sms:eu": ["s"], "sms": ["t"], "x" * 33: ["u"]}
    assert [e.id for e in check_source_names()] == ["inbound.E001", "inbound.E001"]


def test_a_source_without_secrets_is_unknown_even_if_correctly_signed(settings):
    settings.INBOUND_WEBHOOK_SECRETS = {}
    r = deliver(payload())
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_source")
    assert_nothing_stored()


def test_an_oversized_body_is_refused_with_413_before_it_is_verified():
    raw = payload(text="x" * 100, padding="p" * MAX_BODY_BYTES)
    r = deliver(raw)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "body_too_large")
    assert_nothing_stored()


def test_only_post_is_allowed():
    r = Client().get(f"/webhooks/v1/inbound/{SOURCE}")
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00{", "malformed_json"),
        (b"[" * 30_000 + b"]" * 30_000, "malformed_json"),
        (b"[]", "invalid_json"),
        (b'{"text": "hi"}', "missing_field"),
        (b'{"customer": "+441234567", "text": "hi"}', "invalid_field"),
        (b'{"customer": {"name": "Ada"}, "text": "hi"}', "missing_field"),
        (b'{"customer": {"external_id": 441234567}, "text": "hi"}', "invalid_field"),
        (b'{"customer": {"external_id": "c1"}}', "missing_field"),
        (b'{"customer": {"external_id": "c1"}, "text": ["hi"]}', "invalid_field"),
        (b'{"customer": {"external_id": "c1"}, "text": "   "}', "invalid_body"),
        (payload(text="x" * 4001), "invalid_body"),
        (b'{"customer": {"external_id": "c1"}, "text": "a\\u0000b"}', "invalid_field"),
        (b'{"customer": {"external_id": "c1"}, "text": "\\udc00"}', "invalid_field"),
        (b'{"event_id": 1, "customer": {"external_id": "c1"}, "text": "hi"}', "invalid_field"),
        (payload(sent_at="2025-01-31T09:30:00"), "invalid_field"),
        (payload(sent_at="last tuesday"), "invalid_field"),
        (payload(sent_at=1738315800), "invalid_field"),
    ],
)
def test_a_verified_but_invalid_body_is_refused_with_400_and_stores_nothing(raw, code):
    r = deliver(raw)
    assert (r.status_code, r.json()["error"]["code"]) == (400, code)
    assert_nothing_stored()
