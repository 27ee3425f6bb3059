"""The agents' view of a customer says how the customer came to Parley, so the
dashboard can say where the contact details came from."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from customers.models import Customer
from customers.services import customer_register

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "test-integration-key"


def origin(agent, customer_id: object) -> object:
    r = agent.get(f"/api/v1/conversations/{customer_id}")
    assert r.status_code == 200, r.json()
    return r.json()["customer"]["origin"]


def test_each_way_in_has_its_own_origin(agent, project, settings):
    settings.PARLEY_INTEGRATION_KEY = KEY
    form = Client()
    assert form.post("/chat/start/", {"name": "Vera Visitor", "email": "vera@example.com"}).status_code == 302
    visitor = Customer.objects.get(email="vera@example.com")
    r = Client().post(
        "/api/v1/customers", json.dumps({"name": "Ada", "external_id": "crm-1"}), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {KEY}",
    )
    assert r.status_code == 201
    registered = r.json()["customer_id"]
    by_webhook = customer_register(name="+447700900123", external_id="sms:+447700900123", actor="inbound:sms").customer
    other = customer_register(name="Made in a shell").customer
    project()
    assert origin(agent, visitor.id) == "form"
    assert origin(agent, registered) == "api"
    assert origin(agent, by_webhook.id) == "webhook"
    assert origin(agent, other.id) is None
