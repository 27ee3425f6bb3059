"""The Push section of the contract over HTTP: public key, subscriptions, /sw.js."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from notifications.models import PushDelivery, PushSubscription
from notifications.subscriptions import MAX_SUBSCRIPTIONS_PER_CUSTOMER
from notifications.vapid import b64url_encode
from tests.integration.test_push_support import (
    agent_says,
    push,  # noqa: F401  (fixture)
    run_pipeline,
    subscribe,
    vapid_keys,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/push-subscriptions"


def browser_subscription(push, endpoint: str | None = None, **keys: str) -> dict:
    body = push.new_subscription().to_json()
    if endpoint is not None:
        body["endpoint"] = endpoint
    body["keys"].update(keys)
    return body


def test_the_public_key_is_the_configured_vapid_key(vapid_keys, client):
    r = client.get("/api/v1/push/public-key")
    assert r.status_code == 200
    assert r.json() == {"public_key": vapid_keys.public_key}


def test_without_vapid_keys_push_says_it_is_not_configured(settings, client, customer):
    settings.VAPID_PRIVATE_KEY = ""
    r = client.get("/api/v1/push/public-key")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "push_not_configured"


def test_the_same_endpoint_again_is_the_same_subscription(push, vapid_keys, customer):
    body = browser_subscription(push)
    first = customer.post(URL, body)
    again = customer.post(URL, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["subscription_id"] == again.json()["subscription_id"]
    assert PushSubscription.objects.count() == 1


def test_a_new_key_for_the_same_endpoint_replaces_the_old_one(push, vapid_keys, customer):
    body = browser_subscription(push)
    customer.post(URL, body)
    fresh = push.new_subscription().to_json()["keys"]
    r = customer.post(URL, {**body, "keys": fresh})
    assert r.status_code == 200
    assert PushSubscription.objects.get().p256dh == fresh["p256dh"]


def test_a_device_registered_by_another_customer_moves_to_them(push, vapid_keys, make_customer):
    ada, bob = make_customer(name="Ada"), make_customer(name="Bob", email="bob@example.com")
    body = browser_subscription(push)
    sid = ada.post(URL, body).json()["subscription_id"]
    r = bob.post(URL, body)
    assert r.status_code == 200 and r.json()["subscription_id"] == sid
    assert str(PushSubscription.objects.get().customer_id) == bob.id


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://fcm.googleapis.com/fcm/send/abc",  # allowed host, but not https
        "https://push.example.net/abc",  # not a push service we know
        "https://fcm.googleapis.com.evil.example/abc",
        "https://evil.example/?u=https://fcm.googleapis.com/x",
        "https://user:pw@fcm.googleapis.com/fcm/send/abc",
        "https://evil.example@fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com:8443/fcm/send/abc",
        "https://notify.windows.com/w/abc",  # "*.notify.windows.com" means subdomains only
        "https://fcm.googleapis.com\\@evil.example/",
        "https://fcm.googleapis.com /x",
        "ftp://fcm.googleapis.com/x",
        "javascript:alert(1)",
        "https://127.0.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "",
        "https://fcm.googleapis.com/" + "a" * 2100,
    ],
)
def test_an_endpoint_the_server_may_not_post_to_is_refused_and_nothing_is_stored(push, vapid_keys, customer, endpoint):
    r = customer.post(URL, browser_subscription(push, endpoint))
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "push_endpoint_not_allowed"
    assert PushSubscription.objects.count() == 0


def test_http_to_the_insecure_host_needs_its_port_too(push, vapid_keys, customer):
    other_port = int(push.base_url.rsplit(":", 1)[1]) + 1
    endpoint = f"http://127.0.0.1:{other_port}/push/abc"
    r = customer.post(URL, browser_subscription(push, endpoint))
    assert r.status_code == 400
    assert PushSubscription.objects.count() == 0


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk",
        "https://web.push.apple.com/QGx1Z3R6",
        "https://wns2-by3p.notify.windows.com/w/?token=BQYAAAD",
        "https://FCM.googleapis.com:443/fcm/send/abc",
    ],
)
def test_https_endpoints_of_the_known_push_services_are_accepted(push, vapid_keys, customer, endpoint):
    r = customer.post(URL, browser_subscription(push, endpoint))
    assert r.status_code == 201, r.content


def _point_off_the_curve() -> str:
    return b64url_encode(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(
    ("keys", "code"),
    [
        ({"p256dh": b64url_encode(b"\x04" + b"\x00" * 10)}, "invalid_push_keys"),
        ({"p256dh": _point_off_the_curve()}, "invalid_push_keys"),
        ({"p256dh": b64url_encode(b"\x02" + b"\x11" * 32)}, "invalid_push_keys"),  # compressed
        ({"p256dh": "not base64!"}, "invalid_push_keys"),
        ({"auth": b64url_encode(b"\x00" * 8)}, "invalid_push_keys"),
        ({"auth": "***"}, "invalid_push_keys"),
        ({"auth": 16}, "invalid_field"),
    ],
)
def test_subscription_keys_are_checked_and_bad_ones_store_nothing(push, vapid_keys, customer, keys, code):
    r = customer.post(URL, browser_subscription(push, **keys))
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code
    assert PushSubscription.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"endpoint": "https://fcm.googleapis.com/x"}, {"endpoint": "https://fcm.googleapis.com/x", "keys": "k"}],
)
def test_a_subscription_without_its_parts_is_refused(push, vapid_keys, customer, body):
    r = customer.post(URL, body)
    assert r.status_code == 400
    assert PushSubscription.objects.count() == 0


def test_only_customers_register_devices(push, vapid_keys, agent):
    assert agent.post(URL, browser_subscription(push)).status_code == 403
    assert Client().post(URL, browser_subscription(push), content_type="application/json").status_code == 401
    assert PushSubscription.objects.count() == 0


def test_a_customer_deletes_their_own_device_and_its_queue(push, vapid_keys, customer, agent):
    device = subscribe(push, customer, vapid_keys)
    agent_says(agent, customer)
    run_pipeline()
    assert PushDelivery.objects.count() == 1
    r = customer.delete(f"{URL}/{device.subscription_id}")
    assert r.status_code == 204
    assert PushSubscription.objects.count() == 0
    assert PushDelivery.objects.count() == 0
    assert customer.delete(f"{URL}/{device.subscription_id}").status_code == 404


def test_nobody_deletes_another_customers_device(push, vapid_keys, make_customer):
    ada, bob = make_customer(name="Ada"), make_customer(name="Bob", email="bob@example.com")
    device = subscribe(push, ada, vapid_keys)
    for sid in (device.subscription_id, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        r = bob.delete(f"{URL}/{sid}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "subscription_not_found"
    assert PushSubscription.objects.count() == 1


def test_a_customer_with_too_many_devices_loses_the_least_recent(push, vapid_keys, customer):
    ids = [subscribe(push, customer, vapid_keys).subscription_id for _ in range(MAX_SUBSCRIPTIONS_PER_CUSTOMER + 1)]
    kept = set(PushSubscription.objects.values_list("id", flat=True))
    assert len(kept) == MAX_SUBSCRIPTIONS_PER_CUSTOMER
    assert {str(k) for k in kept} == set(ids[1:])


def test_the_service_worker_is_served_from_the_root_for_the_whole_site(client):
    r = client.get("/sw.js")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/javascript")
    assert r["Service-Worker-Allowed"] == "/"
    body = r.content.decode()
    assert 'addEventListener("push"' in body and "setAppBadge" in body and "notificationclick" in body


def test_the_page_module_is_a_static_file():
    path = finders.find("notifications/push.js")
    assert path is not None
    source = open(path).read()
    exported = ("async function enablePush", "function pushSupported", "async function pushStatus")
    for name in exported:
        assert f"export {name}" in source
