"""Equivalent push endpoints are one device; forms a URL parser could read two ways are refused.

``https://fcm.googleapis.com:443/x``, ``https://FCM.googleapis.com/x`` and
``https://fcm.googleapis.com./x`` name the same push resource. Registered
one after the other they must be one subscription (same id, one row), stored
in one normal form: scheme and host lower-case, no trailing dot on the host,
no default port; path and query exactly as given. User info, fragments,
non-ASCII hosts and IP-literal hosts that no setting names are refused with
400 ``push_endpoint_not_allowed`` and nothing is stored.

Everything goes through ``POST /api/v1/push-subscriptions`` as a customer.
"""

from __future__ import annotations

import pytest

from notifications.models import PushDelivery, PushSubscription
from tests.integration.test_push_support import (
    agent_says,
    make_worker,
    push,  # noqa: F401  (fixture)
    run_pipeline,
    vapid_keys,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/push-subscriptions"
CANONICAL = "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx?Key=AbC"


def body(push, endpoint: str) -> dict:
    sub = push.new_subscription().to_json()
    sub["endpoint"] = endpoint
    return sub


def register(caller, push, endpoint: str):
    return caller.post(URL, body(push, endpoint))


def test_the_three_spellings_of_one_endpoint_are_one_subscription(push, vapid_keys, customer):
    path = "/fcm/send/dGVzdA:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx?Key=AbC"
    answers = [
        register(customer, push, f"https://fcm.googleapis.com:443{path}"),
        register(customer, push, f"https://FCM.googleapis.com{path}"),
        register(customer, push, f"https://fcm.googleapis.com.{path}"),
        register(customer, push, f"HTTPS://Fcm.GoogleAPIs.COM.:443{path}"),
        register(customer, push, CANONICAL),
    ]
    assert [r.status_code for r in answers] == [201, 200, 200, 200, 200], [r.content for r in answers]
    assert len({r.json()["subscription_id"] for r in answers}) == 1
    assert PushSubscription.objects.count() == 1
    assert PushSubscription.objects.get().endpoint == CANONICAL


def test_the_last_keys_registered_under_any_spelling_win(push, vapid_keys, customer):
    register(customer, push, "https://fcm.googleapis.com/fcm/send/abc")
    newer = body(push, "https://fcm.googleapis.com:443/fcm/send/abc")
    assert customer.post(URL, newer).status_code == 200
    assert PushSubscription.objects.get().p256dh == newer["keys"]["p256dh"]


def test_another_customer_registering_another_spelling_takes_the_device_over(push, vapid_keys, make_customer):
    ada, bob = make_customer(name="Ada"), make_customer(name="Bob", email="bob@example.com")
    first = register(ada, push, "https://web.push.apple.com/QGx1Z3R6")
    second = register(bob, push, "https://WEB.PUSH.APPLE.COM./QGx1Z3R6")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["subscription_id"] == second.json()["subscription_id"]
    assert str(PushSubscription.objects.get().customer_id) == bob.id


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com/fcm/send/ABC"),  # path is case-sensitive
        ("https://fcm.googleapis.com/fcm/send/abc?k=v", "https://fcm.googleapis.com/fcm/send/abc?k=V"),  # so is the query
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com/fcm/send/abc/"),
        ("https://a.notify.windows.com/w/x", "https://b.notify.windows.com/w/x"),
    ],
)
def test_endpoints_that_differ_in_path_query_or_host_stay_apart(push, vapid_keys, customer, a, b):
    assert register(customer, push, a).status_code == 201
    assert register(customer, push, b).status_code == 201
    assert set(PushSubscription.objects.values_list("endpoint", flat=True)) == {a, b}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://fcm.googleapis.com", "https://fcm.googleapis.com/"),
        ("https://fcm.googleapis.com?x=1", "https://fcm.googleapis.com/?x=1"),
        ("https://fcm.googleapis.com:0443/x", "https://fcm.googleapis.com/x"),
        ("https://Wns2-BY3P.Notify.Windows.Com/w/?token=BQYAAAD", "https://wns2-by3p.notify.windows.com/w/?token=BQYAAAD"),
        ("https://fcm.googleapis.com/a/%2E%2E/b%7E", "https://fcm.googleapis.com/a/%2E%2E/b%7E"),  # kept as sent
    ],
)
def test_the_stored_endpoint_is_the_normal_form(push, vapid_keys, customer, given, stored):
    r = register(customer, push, given)
    assert r.status_code == 201, r.content
    assert PushSubscription.objects.get(pk=r.json()["subscription_id"]).endpoint == stored


def test_plain_http_to_a_named_insecure_host_drops_port_80(push, vapid_keys, customer, settings):
    settings.PUSH_ENDPOINT_INSECURE_HOSTS = ["push.test"]
    one = register(customer, push, "http://push.test:80/push/abc")
    two = register(customer, push, "HTTP://PUSH.TEST./push/abc")
    assert (one.status_code, two.status_code) == (201, 200)
    assert PushSubscription.objects.get().endpoint == "http://push.test/push/abc"


REFUSED = [
    # user info, in every shape a parser accepts
    "https://user@fcm.googleapis.com/fcm/send/abc",
    "https://user:pw@fcm.googleapis.com/fcm/send/abc",
    "https://@fcm.googleapis.com/fcm/send/abc",
    "https://:@fcm.googleapis.com/fcm/send/abc",
    "https://fcm.googleapis.com@fcm.googleapis.com/fcm/send/abc",
    # fragments, even empty ones
    "https://fcm.googleapis.com/fcm/send/abc#frag",
    "https://fcm.googleapis.com/fcm/send/abc#",
    # IP literals no setting names
    "https://142.250.74.10/fcm/send/abc",
    "https://[2a00:1450:4001::200a]/fcm/send/abc",
    "https://[::1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "https://2130706433/x",  # 127.0.0.1 as one number
    "https://0x7f.0.0.1/x",
    "https://127.1/x",
    "https://127.000.000.001/x",
    # hosts that are not one plain DNS name
    "https://fcm.googleapis.com../x",
    "https://fcm..googleapis.com/x",
    "https://.fcm.googleapis.com/x",
    "https://fcm%2Egoogleapis.com/x",
    "https://fcm_googleapis.com/x",
    "https://-fcm.googleapis.com/x",
    # ports that are no port, or not the default one
    "https://fcm.googleapis.com:0/x",
    "https://fcm.googleapis.com:65536/x",
    "https://fcm.googleapis.com:4a3/x",
    "https://fcm.googleapis.com:/x",
    "https://fcm.googleapis.com:80/x",
    # not "scheme://host"
    "https:fcm.googleapis.com/x",
    "https:/fcm.googleapis.com/x",
    "https:///fcm.googleapis.com/x",
    # non-ASCII hosts are refused, not mapped (see the IDNA test below)
    "https://fcm.googleapis.cöm/x",
    "https://ｆcm.googleapis.com/x",  # fullwidth f: IDNA (UTS 46) would map it to fcm.googleapis.com
    "https://fcm.googleapis.com\u3002/x",  # ideographic full stop
]


@pytest.mark.parametrize("endpoint", REFUSED)
def test_forms_of_an_endpoint_that_are_refused_store_nothing(push, vapid_keys, customer, endpoint):
    r = register(customer, push, endpoint)
    assert r.status_code == 400, (endpoint, r.content)
    assert r.json()["error"]["code"] == "push_endpoint_not_allowed"
    assert r.json()["error"]["detail"]
    assert PushSubscription.objects.count() == 0


def test_the_refusal_says_what_was_wrong(push, vapid_keys, customer):
    details = {
        e: register(customer, push, e).json()["error"]["detail"]
        for e in (
            "https://user@fcm.googleapis.com/x",
            "https://fcm.googleapis.com/x#f",
            "https://142.250.74.10/x",
            "https://push.example.net/x",
        )
    }
    assert "user info" in details["https://user@fcm.googleapis.com/x"]
    assert "fragment" in details["https://fcm.googleapis.com/x#f"]
    assert "IP address" in details["https://142.250.74.10/x"]
    assert "push service" in details["https://push.example.net/x"]


def test_an_idn_host_is_accepted_in_its_ascii_form_only(push, vapid_keys, customer, settings):
    """Chosen: non-ASCII hosts are refused, never mapped. A browser serialises
    an endpoint's host as ASCII (punycode) already; mapping would turn
    lookalikes (fullwidth letters, other full stops) into allowed names."""
    settings.PUSH_ENDPOINT_ALLOWED_HOSTS = ["push.xn--bcher-kva.example"]
    assert register(customer, push, "https://push.bücher.example/x").status_code == 400
    assert PushSubscription.objects.count() == 0
    first = register(customer, push, "https://push.xn--bcher-kva.example/x")
    again = register(customer, push, "https://PUSH.XN--BCHER-KVA.EXAMPLE./x")
    assert (first.status_code, again.status_code) == (201, 200)
    assert PushSubscription.objects.get().endpoint == "https://push.xn--bcher-kva.example/x"


def test_an_ip_literal_host_only_when_a_setting_names_it(push, vapid_keys, customer, settings):
    settings.PUSH_ENDPOINT_ALLOWED_HOSTS = ["*.0.1", "*.1"]  # a wildcard never matches an address
    settings.PUSH_ENDPOINT_INSECURE_HOSTS = ["10.0.0.1:8080", "[::1]:8080"]
    assert register(customer, push, "https://10.0.0.1/x").status_code == 400
    assert register(customer, push, "https://127.0.0.1/x").status_code == 400
    assert register(customer, push, "http://10.0.0.1:8081/x").status_code == 400
    assert PushSubscription.objects.count() == 0
    v4 = register(customer, push, "http://10.0.0.1:8080/x")
    v6 = register(customer, push, "http://[::1]:8080/x")
    v6_again = register(customer, push, "http://[0:0:0:0:0:0:0:1]:8080/x")
    assert (v4.status_code, v6.status_code, v6_again.status_code) == (201, 201, 200)
    assert v6.json()["subscription_id"] == v6_again.json()["subscription_id"]
    assert set(PushSubscription.objects.values_list("endpoint", flat=True)) == {
        "http://10.0.0.1:8080/x",
        "http://[::1]:8080/x",
    }


def test_a_device_stored_before_normalisation_is_found_and_rewritten(push, vapid_keys, customer):
    """A row written before endpoints were normalised, registered again in
    the same spelling, is that row (now in the normal form), not a second one."""
    r = register(customer, push, "https://fcm.googleapis.com/fcm/send/legacy")
    PushSubscription.objects.filter(pk=r.json()["subscription_id"]).update(
        endpoint="https://FCM.googleapis.com:443/fcm/send/legacy"
    )
    again = register(customer, push, "https://FCM.googleapis.com:443/fcm/send/legacy")
    assert again.status_code == 200 and again.json()["subscription_id"] == r.json()["subscription_id"]
    assert PushSubscription.objects.get().endpoint == "https://fcm.googleapis.com/fcm/send/legacy"


def test_pushes_go_to_the_normal_form_and_reach_the_device_once(push, vapid_keys, customer, agent):
    """Two spellings of a real (local) push service's endpoint: one device, one push."""
    sub = push.new_subscription(application_server_key=vapid_keys.public_key)
    spelling = sub.to_json()
    spelling["endpoint"] = sub.endpoint.replace("http://", "HTTP://", 1)
    assert customer.post(URL, sub.to_json()).status_code == 201
    assert customer.post(URL, spelling).status_code == 200
    agent_says(agent, customer, "once")
    run_pipeline()
    make_worker().drain()
    assert PushDelivery.objects.count() == 1
    assert [d.json()["message"]["preview"] for d in sub.deliveries()] == ["once"]
    assert push.requests == 1
