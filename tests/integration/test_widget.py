"""The website widget's server side, through Django's test client: its
settings endpoint, the visitor sign-up that answers a token (and shares the
page form's budget), the identity check, /widget.js and its caching, the
frame page's framing headers (allowed origins only) against the pages'
(nobody), /widget/open/'s refusal of anything but Parley's own frame, and
the widget's logout signing out the windows it opened."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import uuid

import pytest
from django.core import signing
from django.core.cache import cache
from django.test import Client

from accounts import presence
from accounts.models import PopOutSession
from accounts.principals import (
    CUSTOMER_COOKIE,
    customer_cookie_value,
    principal_from_cookies,
    principal_from_token,
    revoked_among,
)
from accounts.tokens import issue_customer_token
from customers.models import Customer
from customers.services import customer_register
from notifications.models import PushSubscription
from tests.integration.test_push_support import push, vapid_keys  # noqa: F401  (fixtures)
from web.widget import built_script

pytestmark = pytest.mark.django_db

HOST = "https://shop.example.com"
JSON = "application/json"


@pytest.fixture(autouse=True)
def widget_settings(settings):
    settings.PARLEY_WIDGET_ORIGINS = [HOST, "http://127.0.0.2:8080"]
    cache.clear()
    yield settings
    cache.clear()


@pytest.fixture
def ada() -> Customer:
    return customer_register(name="Ada Lovelace", email="ada@example.com").customer


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


# -- GET /api/v1/widget ----------------------------------------------------------------------


def test_the_settings_are_public_readable_from_any_origin_and_follow_the_configuration(client: Client, settings):
    r = client.get("/api/v1/widget", HTTP_ORIGIN=HOST)
    assert r.status_code == 200
    assert r["Access-Control-Allow-Origin"] == "*"
    assert r["Cache-Control"] == "no-cache"
    assert r.cookies == {} or all(not c.value for c in r.cookies.values())
    assert r.json() == {
        "name": "Support", "greeting": "Hi! How can we help?", "color": "#0f766e", "online": False,
        "business_hours": None, "reply_time": "We usually reply within a few minutes.", "visitor_signup": True,
        "origins": [HOST, "http://127.0.0.2:8080"],
    }
    settings.PARLEY_WIDGET_NAME, settings.PARLEY_WIDGET_COLOR = "Acme help", "#7c3aed"
    settings.PARLEY_WIDGET_REPLY_TIME, settings.PARLEY_VISITOR_SIGNUP = "", False
    body = client.get("/api/v1/widget").json()
    assert (body["name"], body["color"], body["reply_time"], body["visitor_signup"]) == ("Acme help", "#7c3aed", None, False)


def test_online_means_an_active_agent_has_the_dashboard_open(client: Client, django_user_model):
    grace = django_user_model.objects.create_user("grace", password="pw", is_staff=True)
    assert client.get("/api/v1/widget").json()["online"] is False
    presence.agent_connected("socket-1", str(grace.pk))  # what the dashboard's socket records
    assert client.get("/api/v1/widget").json()["online"] is True
    grace.is_active = False
    grace.save()
    assert client.get("/api/v1/widget").json()["online"] is False


def test_the_settings_refuse_writes(client: Client):
    r = client.post("/api/v1/widget", {}, content_type=JSON)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


# -- POST /api/v1/widget/visitors --------------------------------------------------------------


def test_a_visitor_gets_a_token_for_a_new_customer_and_no_cookie(client: Client):
    r = client.post("/api/v1/widget/visitors", {"name": " Vera Visitor ", "email": "vera@example.com"}, content_type=JSON)
    assert r.status_code == 201, r.content
    body = r.json()
    assert set(body) == {"customer_id", "token"}
    assert principal_from_token(body["token"]).customer_id == uuid.UUID(body["customer_id"])
    customer = Customer.objects.get(id=body["customer_id"])
    assert (customer.name, customer.email, customer.external_id) == ("Vera Visitor", "vera@example.com", None)
    assert not r.cookies  # nothing for another site to ride on: no cookie, so no CSRF to defend
    me = client.get("/api/v1/widget/me", **bearer(body["token"])).json()
    assert me == {"customer_id": body["customer_id"], "name": "Vera Visitor", "email": "vera@example.com"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "Vera", "email": "not an address"}, 400, "invalid_email"),
        ({"name": "Vera", "email": ""}, 400, "invalid_email"),
        ({"name": "   ", "email": "vera@example.com"}, 400, "invalid_name"),
        ({"email": "vera@example.com"}, 400, "missing_field"),
        ({"name": "Vera"}, 400, "missing_field"),
        ({"name": 7, "email": "vera@example.com"}, 400, "invalid_field"),
        ({"name": "x" * 201, "email": "vera@example.com"}, 400, "invalid_field"),
    ],
)
def test_a_bad_sign_up_is_refused_with_its_reason_and_stores_nothing(client: Client, body, status, code):
    before = Customer.objects.count()
    r = client.post("/api/v1/widget/visitors", body, content_type=JSON)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert Customer.objects.count() == before


def test_a_sign_up_must_be_json(client: Client):
    r = client.post("/api/v1/widget/visitors", {"name": "Vera", "email": "vera@example.com"})  # a form post
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = client.post("/api/v1/widget/visitors", "{not json", content_type=JSON)
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    assert client.get("/api/v1/widget/visitors").status_code == 405


def test_sign_ups_share_the_page_forms_budget_per_address(client: Client, settings):
    settings.PARLEY_VISITOR_SIGNUPS_PER_HOUR = 3
    answers = [
        client.post("/api/v1/widget/visitors", {"name": f"V{i}", "email": f"v{i}@example.com"}, content_type=JSON)
        for i in range(2)
    ]
    assert [a.status_code for a in answers] == [201, 201]
    # The chat page's form counts in the same budget: its sign-up is the third.
    form = client.post("/chat/start/", {"name": "Form", "email": "form@example.com"})
    assert form.status_code == 302
    refused = client.post("/api/v1/widget/visitors", {"name": "V9", "email": "v9@example.com"}, content_type=JSON)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 3600
    # A typo does not cost a sign-up: it is refused before the budget is charged
    # (four counted so far, the refused one included: one more fits in five).
    settings.PARLEY_VISITOR_SIGNUPS_PER_HOUR = 5
    assert client.post("/api/v1/widget/visitors", {"name": "V", "email": "typo"}, content_type=JSON).status_code == 400
    ok = client.post("/api/v1/widget/visitors", {"name": "V4", "email": "v4@example.com"}, content_type=JSON)
    assert ok.status_code == 201
    assert client.post("/api/v1/widget/visitors", {"name": "V5", "email": "v5@example.com"},
                       content_type=JSON).status_code == 429


def test_sign_ups_are_off_with_the_visitor_form(client: Client, settings):
    settings.PARLEY_VISITOR_SIGNUP = False
    r = client.post("/api/v1/widget/visitors", {"name": "Vera", "email": "vera@example.com"}, content_type=JSON)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "visitor_signup_disabled")


# -- GET /api/v1/widget/me ------------------------------------------------------------------------


def test_me_names_the_customer_of_the_token_and_refuses_everything_else(client: Client, ada: Customer, settings, make_agent):
    token = issue_customer_token(ada.id)
    r = client.get("/api/v1/widget/me", **bearer(token))
    assert r.status_code == 200
    assert r.json() == {"customer_id": str(ada.id), "name": "Ada Lovelace", "email": "ada@example.com"}

    assert client.get("/api/v1/widget/me").json()["error"]["code"] == "not_authenticated"
    forged = client.get("/api/v1/widget/me", **bearer(token[:-4] + "AAAA"))
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "invalid_token")
    gone = client.get("/api/v1/widget/me", **bearer(issue_customer_token(uuid.uuid4())))
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "customer_not_found")
    agent = make_agent("grace")
    assert client.get("/api/v1/widget/me", **bearer(agent.token)).status_code == 403
    settings.CUSTOMER_TOKEN_MAX_AGE = -1
    expired = client.get("/api/v1/widget/me", **bearer(token))
    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "token_expired")


# -- the frame page and the pages: who may frame them -----------------------------------------


def test_the_frame_may_be_framed_by_the_allowed_origins_only(client: Client):
    r = client.get("/widget/frame/")
    assert r.status_code == 200
    policy = directives(r["Content-Security-Policy"])
    assert policy["frame-ancestors"] == [HOST, "http://127.0.0.2:8080"]
    # Otherwise the pages' strict policy: scripts and styles from Parley only; blob: images (attachments).
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["img-src"] == ["'self'", "data:", "blob:"]
    assert "unsafe-inline" not in r["Content-Security-Policy"] and "unsafe-eval" not in r["Content-Security-Policy"]
    assert "X-Frame-Options" not in r  # it cannot name origins; frame-ancestors does
    assert not r.cookies  # no cookie: identity comes by postMessage and stays in the frame
    assert "no-store" in r["Cache-Control"] or "max-age=0" in r["Cache-Control"]
    page = r.content.decode()
    config = json.loads(page.split('id="parley-config" type="application/json">')[1].split("</script>")[0])
    assert config["origins"] == [HOST, "http://127.0.0.2:8080"]
    assert "token" not in page.lower().replace('id="w-open-token"', "").replace('name="token"', "")


def test_with_no_origins_configured_nobody_may_frame_it(client: Client, settings):
    settings.PARLEY_WIDGET_ORIGINS = []
    r = client.get("/widget/frame/")
    assert directives(r["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]
    assert client.get("/api/v1/widget").json()["origins"] == []


def test_the_chat_page_the_form_and_the_dashboard_stay_unframeable(client: Client, ada: Customer, make_agent):
    client.get("/chat/", {"token": issue_customer_token(ada.id)})
    pages = [client.get("/chat/"), client.get("/chat/start/", follow=False)]
    staff = Client()
    agent = make_agent("grace")
    staff.login(username="grace", password="pw-grace")
    assert agent.id
    pages.append(staff.get("/agent/"))
    for r in pages:
        assert r["X-Frame-Options"] == "DENY"
        if "Content-Security-Policy" in r:
            assert directives(r["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


# -- /widget.js ---------------------------------------------------------------------------------


def test_the_script_is_served_from_a_stable_address_with_a_short_cache_and_its_hash(client: Client):
    source = built_script().read_bytes()
    r = client.get("/widget.js")
    assert r.status_code == 200
    assert r["Content-Type"] == "text/javascript; charset=utf-8"
    assert r["Cache-Control"] == "public, max-age=300"
    assert r["Access-Control-Allow-Origin"] == "*" and r["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r.content == source
    etag = r["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{20}"', etag)
    again = client.get("/widget.js", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    packed = client.get("/widget.js", HTTP_ACCEPT_ENCODING="gzip, br")
    assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
    assert gzip.decompress(packed.content) == source
    assert client.head("/widget.js").status_code == 200
    assert client.post("/widget.js").status_code == 405


# -- /widget/open/: into Parley's own window -----------------------------------------------------


def test_the_frame_opens_the_chat_page_signed_in_by_posting_the_token(client: Client, ada: Customer):
    token = issue_customer_token(ada.id)
    r = client.post("/widget/open/", {"token": token}, HTTP_ORIGIN="http://testserver", HTTP_SEC_FETCH_SITE="same-origin")
    assert r.status_code == 302 and r["Location"] == "/chat/"
    assert r["Referrer-Policy"] == "no-referrer"
    principal = principal_from_cookies({CUSTOMER_COOKIE: r.cookies[CUSTOMER_COOKIE].value}, None)
    assert principal is not None and principal.customer_id == ada.id
    assert client.get("/chat/").status_code == 200
    notify = client.post("/widget/open/?next=notifications", {"token": token}, HTTP_ORIGIN="http://testserver")
    assert notify["Location"] == "/chat/#notifications"


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "http://testserver", "HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_ORIGIN": "http://testserver.evil.example"},
        {"HTTP_ORIGIN": "http://testserver/path"},
        {"HTTP_ORIGIN": "null"},
        {},
    ],
)
def test_another_site_cannot_post_a_token_to_switch_a_visitor(client: Client, ada: Customer, headers):
    """Otherwise a site could sign a visitor into a conversation of its choosing (login CSRF)."""
    r = client.post("/widget/open/", {"token": issue_customer_token(ada.id)}, **headers)
    assert r.status_code == 403
    assert CUSTOMER_COOKIE not in r.cookies
    assert "opens from the support widget" in r.content.decode()


def test_open_refuses_a_bad_token_and_anything_but_a_post(client: Client, ada: Customer, settings):
    r = client.post("/widget/open/", {"token": "pc.forged:abc:def"}, HTTP_ORIGIN="http://testserver")
    assert r.status_code == 403 and CUSTOMER_COOKIE not in r.cookies
    assert "not valid" in r.content.decode()
    token = issue_customer_token(ada.id)
    settings.CUSTOMER_TOKEN_MAX_AGE = -1
    expired = client.post("/widget/open/", {"token": token}, HTTP_ORIGIN="http://testserver")
    assert expired.status_code == 403 and "expired" in expired.content.decode()
    assert client.get("/widget/open/").status_code == 405


def test_widget_sign_ups_from_one_ipv6_slash_64_share_one_budget(settings):
    """The widget's visitor form counts sign-ups by network as /chat/start/ does: an IPv6 client by its /64."""
    settings.PARLEY_VISITOR_SIGNUPS_PER_HOUR = 3
    statuses = [
        Client(REMOTE_ADDR=f"2001:db8:5:6::{i:x}").post(
            "/api/v1/widget/visitors", {"name": f"Visitor {i}", "email": f"v{i}@example.com"}, content_type=JSON,
        ).status_code
        for i in range(1, 9)
    ]
    assert statuses == [201] * 3 + [429] * 5
    assert Customer.objects.count() == 3
    other_network = Client(REMOTE_ADDR="2001:db8:5:7::1")
    assert other_network.post("/api/v1/widget/visitors", {"name": "Other", "email": "o@example.com"},
                              content_type=JSON).status_code == 201
# -- POST /api/v1/widget/logout: the windows the widget opened are signed out -----------------------


def popped_out(customer: Customer) -> Client:
    """A browser window that the widget's "Open in a new window" signed in as ``customer``."""
    window = Client()
    r = window.post("/widget/open/", {"token": issue_customer_token(customer.id)}, HTTP_ORIGIN="http://testserver")
    assert r.status_code == 302 and window.get("/chat/").status_code == 200
    return window


def test_the_widgets_logout_signs_out_its_windows_and_only_that_customers(client: Client, ada: Customer, settings):
    bob = customer_register(name="Bob", email="bob@example.com").customer
    ada_window, ada_second_window, bob_window = popped_out(ada), popped_out(ada), popped_out(bob)
    ada_linked = Client()  # ada's /chat/ reached by her host application's link: not the widget's to sign out
    ada_linked.get("/chat/", {"token": issue_customer_token(ada.id)})

    r = client.post("/api/v1/widget/logout", **bearer(issue_customer_token(ada.id)))
    assert r.status_code == 204 and r.content == b""

    assert ada_window.get("/api/v1/widget/me").json()["error"]["code"] == "not_authenticated"  # the API's no more
    assert ada_second_window.get("/chat/start/").status_code == 200  # the form, not a redirect into her chat
    for window in (ada_window, ada_second_window):
        page = window.get("/chat/")
        assert (page.status_code, page["Location"]) == (302, "/chat/start/")  # the pre-chat form, nobody's chat
        assert page.cookies[CUSTOMER_COOKIE].value == ""  # and the stale cookie goes
    settings.PARLEY_VISITOR_SIGNUP = False
    closed = popped_out(ada)
    client.post("/api/v1/widget/logout", **bearer(issue_customer_token(ada.id)))
    assert closed.get("/chat/").status_code == 401  # without the form: the closed page
    assert bob_window.get("/chat/").status_code == 200
    assert ada_linked.get("/chat/").status_code == 200
    # Again is fine: nothing left to sign out.
    assert client.post("/api/v1/widget/logout", **bearer(issue_customer_token(ada.id))).status_code == 204


def test_the_widgets_logout_refuses_a_forged_expired_or_missing_token(client: Client, ada: Customer, settings):
    window = popped_out(ada)
    token = issue_customer_token(ada.id)
    for headers, code in [
        (bearer(token[:-4] + "AAAA"), "invalid_token"),
        (bearer("pc.forged:abc:def"), "invalid_token"),
        ({}, "not_authenticated"),
    ]:
        r = client.post("/api/v1/widget/logout", **headers)
        assert (r.status_code, r.json()["error"]["code"]) == (401, code)
    settings.CUSTOMER_TOKEN_MAX_AGE = -1
    expired = client.post("/api/v1/widget/logout", **bearer(token))
    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "token_expired")
    settings.CUSTOMER_TOKEN_MAX_AGE = 3600
    assert window.get("/chat/").status_code == 200  # none of them signed the window out
    assert client.get("/api/v1/widget/logout", **bearer(token)).status_code == 405


def test_a_forged_pop_out_cookie_signs_nobody_in(ada: Customer):
    """The session's key is in the signed cookie: one made up does not stand, nor one of another customer."""
    bob = customer_register(name="Bob", email="bob@example.com").customer
    bob_window = popped_out(bob)
    key = signing.get_cookie_signer(salt="parley.accounts.customer-cookie").unsign(
        bob_window.cookies[CUSTOMER_COOKIE].value).partition("~")[2]
    for popout in (key, "made-up"):
        forged = customer_cookie_value(issue_customer_token(ada.id), popout=popout)
        assert principal_from_cookies({CUSTOMER_COOKIE: forged}, None) is None


def test_push_subscriptions_made_in_a_signed_out_window_go_with_it(ada: Customer, push, vapid_keys):
    window = popped_out(ada)
    window.get("/chat/")  # the page's CSRF cookie, which its script sends back
    csrf = {"HTTP_X_CSRFTOKEN": window.cookies["csrftoken"].value}
    in_window = window.post("/api/v1/push-subscriptions", push.new_subscription().to_json(),
                            content_type=JSON, **csrf)
    assert in_window.status_code == 201, in_window.content
    phone = Client().post("/api/v1/push-subscriptions", push.new_subscription().to_json(), content_type=JSON,
                          **bearer(issue_customer_token(ada.id)))
    assert phone.status_code == 201
    cookie = window.cookies[CUSTOMER_COOKIE].value
    popout = principal_from_cookies({CUSTOMER_COOKIE: cookie}, None)
    assert popout is not None and popout.credential is not None
    assert revoked_among([popout.credential]) == set()

    assert Client().post("/api/v1/widget/logout", **bearer(issue_customer_token(ada.id))).status_code == 204
    assert list(PushSubscription.objects.values_list("id", flat=True)) == [uuid.UUID(phone.json()["subscription_id"])]
    assert revoked_among([popout.credential]) == {popout.credential}  # its open sockets are closed (4401)
    late = window.post("/api/v1/push-subscriptions", push.new_subscription().to_json(), content_type=JSON, **csrf)
    assert late.status_code == 401
    assert PushSubscription.objects.count() == 1


def test_leave_in_a_window_the_widget_opened_signs_that_window_out_for_good(ada: Customer, push, vapid_keys):
    """"Leave" ends the window's pop-out session and the push subscription made in it; the
    customer's other pop-out window and other devices stay signed in."""
    window, other = popped_out(ada), popped_out(ada)
    window.get("/chat/")
    csrf = {"HTTP_X_CSRFTOKEN": window.cookies["csrftoken"].value}
    made = window.post("/api/v1/push-subscriptions", push.new_subscription().to_json(), content_type=JSON, **csrf)
    assert made.status_code == 201, made.content
    phone = Client().post("/api/v1/push-subscriptions", push.new_subscription().to_json(), content_type=JSON,
                          **bearer(issue_customer_token(ada.id)))
    assert phone.status_code == 201
    cookie = window.cookies[CUSTOMER_COOKIE].value
    assert PopOutSession.objects.filter(customer_id=ada.id).count() == 2

    left = window.post("/chat/leave/", **csrf)
    assert left.status_code == 302 and left.cookies[CUSTOMER_COOKIE].value == ""
    assert PopOutSession.objects.filter(customer_id=ada.id).count() == 1
    # The old cookie, kept by someone who copied it before leaving, no longer signs anybody in.
    assert principal_from_cookies({CUSTOMER_COOKIE: cookie}, None) is None
    assert list(PushSubscription.objects.values_list("id", flat=True)) == [uuid.UUID(phone.json()["subscription_id"])]
    assert other.get("/chat/").status_code == 200


def test_pop_out_sessions_past_a_tokens_lifetime_are_purged_whoevers_they_are(ada: Customer, settings):
    bob = customer_register(name="Bob", email="bob@example.com").customer
    popped_out(bob)
    PopOutSession.objects.update(created_at=dt.datetime.now(dt.timezone.utc)
                                 - dt.timedelta(seconds=settings.CUSTOMER_TOKEN_MAX_AGE + 60))
    popped_out(ada)  # another customer's pop-out purges Bob's expired session on the way
    assert list(PopOutSession.objects.values_list("customer_id", flat=True)) == [ada.id]
