"""Registering webhook endpoints: the SSRF guard, the types, nothing stored on refusal."""

from __future__ import annotations

import pytest

from outbound import guard
from outbound.endpoints import endpoint_register
from outbound.models import WebhookDelivery, WebhookEndpoint
from outbound.transport import PinnedTransport
from tests.integration.webhook_support import integration, receiver, register, run_pipeline, says, worker  # noqa: F401

pytestmark = pytest.mark.django_db

EPS = "/api/v1/webhook-endpoints"


@pytest.fixture(autouse=True)
def _key(settings):
    settings.PARLEY_INTEGRATION_KEY = "test-integration-key"
    settings.WEBHOOK_INSECURE_HOSTS = []


@pytest.mark.parametrize("url", [
    "http://example.com/hook",  # not https
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://10.1.2.3/hook",
    "https://192.168.0.10/hook",
    "https://169.254.169.254/latest/meta-data",  # the cloud metadata service: link-local
    "https://[::ffff:127.0.0.1]/hook",  # loopback spelled as IPv4-mapped IPv6
    "https://224.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[fec0::1]/hook",  # IPv6 site-local (deprecated, still routed inside some networks)
    "https://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
    "https://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",  # Teredo whose client is 10.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of the metadata service
    "https://192.0.0.8/hook",  # IANA special-purpose (IETF protocol assignments)
    "https://192.88.99.1/hook",  # the old 6to4 relay anycast
    "https://100.64.0.1/hook",  # carrier-grade NAT
    "https://198.18.0.1/hook",  # benchmarking
    "https://localhost/hook",
    "https://user@example.com/hook",
    "https://example.com/hook#fragment",
    "https://exa mple.com/hook",
    "ftp://example.com/hook",
])
def test_urls_that_could_reach_inside_are_refused_and_nothing_is_stored(client, url):
    r = integration(client, "post", EPS, {"url": url, "events": ["message.created"]})
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "webhook_url_not_allowed"
    assert WebhookEndpoint.objects.count() == 0


def test_a_local_receiver_is_refused_with_the_setting_that_allows_it_in_development(client, settings):
    r = integration(client, "post", EPS, {"url": "http://127.0.0.1:9000/hooks", "events": ["message.created"]})
    assert r.status_code == 400, r.content
    assert r.json()["error"]["detail"] == ("the URL must be https (for a receiver in local development, add "
                                           "127.0.0.1:9000 to WEBHOOK_INSECURE_HOSTS in .env and restart)")
    r = integration(client, "post", EPS, {"url": "https://127.0.0.1:9443/hooks", "events": ["message.created"]})
    assert r.json()["error"]["detail"] == (
        "the host '127.0.0.1' resolves to a forbidden address: 127.0.0.1 is a loopback address (for a receiver in "
        "local development, add 127.0.0.1:9443 to WEBHOOK_INSECURE_HOSTS in .env and restart)")
    # No way around the guard is suggested for an address that is not on this machine.
    for url in ("http://10.0.0.7:9000/hooks", "https://169.254.169.254/latest", "https://[fd00::1]/hooks"):
        r = integration(client, "post", EPS, {"url": url, "events": ["message.created"]})
        assert r.status_code == 400, r.content
        assert "WEBHOOK_INSECURE_HOSTS" not in r.json()["error"]["detail"], url
    settings.WEBHOOK_INSECURE_HOSTS = ["127.0.0.1:9000"]
    r = integration(client, "post", EPS, {"url": "http://127.0.0.1:9000/hooks", "events": ["message.created"]})
    assert r.status_code == 201, r.content


def test_a_name_resolving_to_any_private_address_is_refused():
    def resolve(host, port):
        return ["93.184.215.14", "10.0.0.7"]

    with pytest.raises(guard.WebhookUrlNotAllowed, match="private"):
        endpoint_register(url="https://hooks.example.com/x", events=["message.created"], resolve=resolve)
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "2002:5db8:d70e::1", "::ffff:93.184.215.14"])
def test_public_addresses_pass_the_guard(address):
    assert guard.forbidden(address) is None


def test_a_public_name_is_accepted():
    created = endpoint_register(url="https://hooks.example.com/x", events=["message.created"],
                                resolve=lambda host, port: ["93.184.215.14"])
    assert created.secret.startswith("whsec_")


@pytest.mark.parametrize("events, code", [
    (["note.deleted"], "unsupported_event_type"),
    (["message.created", "conversation.closed"], "unsupported_event_type"),
    ([], "unsupported_event_type"),
    ("message.created", "invalid_field"),
    ([1], "invalid_field"),
])
def test_unknown_or_malformed_event_types_are_refused_with_the_supported_list(client, events, code):
    r = integration(client, "post", EPS, {"url": "https://127.0.0.1/x", "events": events})
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code
    if code == "unsupported_event_type":
        assert ("conversation.sla_breached, conversation.updated, customer.erased, customer.updated, message.created, message.edited, "
                "message.read, note.created") in r.json()["error"]["detail"]
    assert WebhookEndpoint.objects.count() == 0


def test_the_integration_key_is_required(client):
    r = client.post(EPS, {"url": "https://example.com", "events": ["message.created"]}, content_type="application/json")
    assert r.status_code == 401
    assert client.get(EPS).status_code == 401
    assert integration(client, "delete", f"{EPS}/not-a-uuid").status_code == 404


def test_the_secret_is_shown_once_and_never_listed(client, receiver):
    ep = register(client, receiver)
    listed = integration(client, "get", EPS).json()["endpoints"]
    assert [e["endpoint_id"] for e in listed] == [ep["endpoint_id"]]
    assert "secret" not in listed[0] and ep["secret"] not in str(listed)


@pytest.mark.django_db(transaction=True)
def test_an_address_that_turned_private_since_registration_is_not_posted_to(client, receiver, customer):
    # Registered while public; at delivery the name resolves to a private address (DNS rebinding).
    created = endpoint_register(url="https://hooks.example.com/x", events=["message.created"],
                                resolve=lambda host, port: ["93.184.215.14"])
    says(customer, "hello")
    run_pipeline()
    w = worker()
    w.transport = PinnedTransport(timeout=1.0, resolve=lambda host, port: ["10.0.0.7"])
    w.run_once()
    row = WebhookDelivery.objects.get(endpoint_id=created.endpoint.pk)
    assert (row.state, row.attempts, row.last_status) == ("pending", 1, None)
    assert "private" in row.reason
