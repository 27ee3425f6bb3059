"""Customer tokens issued by POST /api/v1/customers: each one fresh, each one working."""

from __future__ import annotations

import json
import uuid
from unittest import mock

import pytest
from django.core import signing
from django.test import Client

from accounts.tokens import PREFIX, InvalidCustomerToken, _signer, issue_customer_token, verify_customer_token
from tests.conftest import new_id

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "test-integration-key"


@pytest.fixture(autouse=True)
def _integration_key(settings):
    settings.PARLEY_INTEGRATION_KEY = KEY


def register(client: Client, **body: str) -> tuple[int, dict]:
    r = client.post("/api/v1/customers", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {KEY}")
    return r.status_code, r.json()


def test_registering_the_same_customer_twice_in_one_second_gives_two_distinct_working_tokens(client):
    # The same second for both (the timestamp in a token has a resolution of one second).
    with mock.patch("django.core.signing.time.time", return_value=1_800_000_000.25):
        first_status, first = register(client, name="Ada", external_id="crm-4711")
        again_status, again = register(client, name="Ada", external_id="crm-4711")
    assert (first_status, again_status) == (201, 200)
    assert first["customer_id"] == again["customer_id"]
    assert first["token"] != again["token"]
    for token in (first["token"], again["token"]):
        assert str(verify_customer_token(token)) == first["customer_id"]


def test_every_issued_token_is_distinct_and_names_its_customer():
    customer_id = uuid.uuid4()
    tokens = {issue_customer_token(customer_id) for _ in range(50)}
    assert len(tokens) == 50
    assert {verify_customer_token(t) for t in tokens} == {customer_id}


def test_a_token_issued_before_nonces_existed_still_works(customer):
    old_style = PREFIX + _signer().sign(customer.id)  # pc.<uuid>:<timestamp>:<signature>
    customer.token = old_style
    r = customer.post("/api/v1/messages", {"message_id": new_id(), "body": "still me"})
    assert r.status_code == 201
    assert r.json()["message"]["customer_id"] == customer.id


def test_the_nonce_is_signed_too():
    token = issue_customer_token(uuid.uuid4())
    value, timestamp, signature = token[len(PREFIX):].split(":")
    customer, nonce = value.split(".")
    tampered = f"{PREFIX}{customer}.{nonce[::-1]}x:{timestamp}:{signature}"
    with pytest.raises(InvalidCustomerToken):
        verify_customer_token(tampered)
    with pytest.raises(signing.BadSignature):
        _signer().unsign(tampered[len(PREFIX):])
