"""The pages' server side: the token exchange, the visitor entry, agent-only
dashboard and the web app manifest, through Django's test client."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.principals import CUSTOMER_COOKIE, principal_from_cookies
from accounts.tokens import issue_customer_token
from customers.models import Customer
from customers.services import customer_register

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ada() -> Customer:
    return customer_register(name="Ada Lovelace", email="ada@example.com").customer


def test_a_chat_link_sets_the_customer_cookie_and_redirects_without_the_token(client: Client, ada: Customer):
    token = issue_customer_token(ada.id)
    r = client.get("/chat/", {"token": token})
    assert r.status_code == 302
    assert r["Location"] == "/chat/"
    assert "token" not in r["Location"]
    assert r["Referrer-Policy"] == "no-referrer"
    cookie = r.cookies[CUSTOMER_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) > 0
    assert cookie.value != token  # signed again: a bare token in the cookie would not be accepted
    principal = principal_from_cookies({CUSTOMER_COOKIE: cookie.value}, None)
    assert principal is not None and principal.customer_id == ada.id


def test_after_the_exchange_the_chat_page_opens_for_that_customer(client: Client, ada: Customer):
    client.get("/chat/", {"token": issue_customer_token(ada.id)})
    r = client.get("/chat/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "Ada Lovelace" in page
    assert 'rel="manifest"' in page and "apple-touch-icon" in page and 'name="theme-color"' in page
    assert "csrftoken" in r.cookies
    assert "script-src 'self'" in r["Content-Security-Policy"]
    config = json.loads(page.split('id="parley-config" type="application/json">')[1].split("</script>")[0])
    assert config["customerId"] == str(ada.id)


def test_the_chat_cookie_is_secure_outside_debug(client: Client, ada: Customer, settings):
    settings.DEBUG = False
    settings.SESSION_COOKIE_SECURE = True
    r = client.get("/chat/", {"token": issue_customer_token(ada.id)})
    assert r.cookies[CUSTOMER_COOKIE]["secure"]


@pytest.mark.parametrize("token", ["pc.forged:abc:def", "not-a-token", ""])
def test_an_invalid_chat_link_gets_a_clear_error_page_and_no_cookie(client: Client, token: str):
    r = client.get("/chat/", {"token": token})
    assert r.status_code == 403
    assert CUSTOMER_COOKIE not in r.cookies
    assert "not valid" in r.content.decode()
    assert r["Referrer-Policy"] == "no-referrer"


def test_an_expired_chat_link_says_so(client: Client, ada: Customer, settings):
    token = issue_customer_token(ada.id)
    settings.CUSTOMER_TOKEN_MAX_AGE = -1
    r = client.get("/chat/", {"token": token})
    assert r.status_code == 403
    assert "expired" in r.content.decode()


def test_without_a_conversation_the_chat_page_offers_to_start_one(client: Client):
    r = client.get("/chat/")
    assert r.status_code == 302 and r["Location"] == "/chat/start/"


def test_a_visitor_starts_a_conversation_with_name_and_email(client: Client):
    page = client.get("/chat/start/")
    assert page.status_code == 200 and 'autocomplete="email"' in page.content.decode()
    r = client.post("/chat/start/", {"name": "Grace Hopper", "email": "grace@example.com"})
    assert r.status_code == 302 and r["Location"] == "/chat/"
    customer = Customer.objects.get(email="grace@example.com")
    assert customer.name == "Grace Hopper"
    principal = principal_from_cookies({CUSTOMER_COOKIE: r.cookies[CUSTOMER_COOKIE].value}, None)
    assert principal is not None and principal.customer_id == customer.id
    assert client.get("/chat/").status_code == 200


def test_the_visitor_form_rejects_a_bad_email_and_registers_nobody(client: Client):
    r = client.post("/chat/start/", {"name": "Grace", "email": "not an email"})
    assert r.status_code == 400
    assert Customer.objects.count() == 0


def test_the_visitor_form_is_csrf_protected():
    r = Client(enforce_csrf_checks=True).post("/chat/start/", {"name": "Grace", "email": "grace@example.com"})
    assert r.status_code == 403
    assert Customer.objects.count() == 0


def test_visitor_sign_ups_are_rate_limited_per_client_address(settings):
    settings.PARLEY_VISITOR_SIGNUPS_PER_HOUR = 3
    here, elsewhere = Client(REMOTE_ADDR="203.0.113.7"), Client(REMOTE_ADDR="198.51.100.2")
    statuses = [
        here.post("/chat/start/", {"name": f"Visitor {i}", "email": f"v{i}@example.com"}).status_code for i in range(5)
    ]
    assert statuses == [302, 302, 302, 429, 429]
    assert Customer.objects.count() == 3
    limited = here.post("/chat/start/", {"name": "Again", "email": "again@example.com"})
    assert int(limited["Retry-After"]) > 0
    assert "Too many" in limited.content.decode()
    assert elsewhere.post("/chat/start/", {"name": "Other", "email": "other@example.com"}).status_code == 302


def test_visitor_sign_ups_from_one_ipv6_slash_64_share_one_budget(settings):
    settings.PARLEY_VISITOR_SIGNUPS_PER_HOUR = 3
    statuses = [
        Client(REMOTE_ADDR=f"2001:db8:1:2::{i:x}").post(
            "/chat/start/", {"name": f"Visitor {i}", "email": f"v{i}@example.com"}).status_code
        for i in range(1, 16)
    ]
    assert statuses == [302] * 3 + [429] * 12
    assert Customer.objects.count() == 3
    other_network = Client(REMOTE_ADDR="2001:db8:1:3::1")
    assert other_network.post("/chat/start/", {"name": "Other", "email": "other@example.com"}).status_code == 302


def test_leaving_the_chat_forgets_the_customer(client: Client, ada: Customer):
    client.get("/chat/", {"token": issue_customer_token(ada.id)})
    r = client.post("/chat/leave/")
    assert r.status_code == 302
    assert r.cookies[CUSTOMER_COOKIE].value == ""
    assert client.get("/chat/")["Location"] == "/chat/start/"


def test_the_dashboard_sends_anonymous_visitors_to_the_login_page(client: Client):
    r = client.get("/agent/")
    assert r.status_code == 302
    assert r["Location"].startswith("/accounts/login/?next=/agent/")


def test_the_dashboard_is_for_staff_only(client: Client, django_user_model):
    django_user_model.objects.create_user("mallory", password="pw-mallory-123", is_staff=False)
    client.login(username="mallory", password="pw-mallory-123")
    assert client.get("/agent/")["Location"].startswith("/accounts/login/")


def test_an_agent_logs_in_and_lands_on_the_dashboard(client: Client, django_user_model):
    django_user_model.objects.create_user("grace", password="pw-grace-123", is_staff=True, first_name="Grace")
    login = client.get("/accounts/login/")
    assert login.status_code == 200 and 'autocomplete="current-password"' in login.content.decode()
    r = client.post("/accounts/login/", {"username": "grace", "password": "pw-grace-123"})
    assert r.status_code == 302 and r["Location"] == "/agent/"
    page = client.get("/agent/")
    assert page.status_code == 200
    assert "csrftoken" in page.cookies
    assert "Grace" in page.content.decode()


def test_the_home_page_sends_agents_to_the_dashboard_and_others_to_the_chat(client: Client, django_user_model):
    assert client.get("/")["Location"] == "/chat/"
    django_user_model.objects.create_user("grace", password="pw-grace-123", is_staff=True)
    client.login(username="grace", password="pw-grace-123")
    assert client.get("/")["Location"] == "/agent/"


def test_the_web_app_manifest_makes_the_chat_installable(client: Client):
    r = client.get("/manifest.webmanifest")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/manifest+json"
    manifest = json.loads(r.content)
    assert manifest["name"] == "Parley"
    assert manifest["start_url"] == "/chat/"
    assert manifest["display"] == "standalone"
    assert manifest["theme_color"].startswith("#")
    sizes = {icon["sizes"] for icon in manifest["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes


def test_the_manifest_icons_are_real_pngs_of_their_stated_size():
    from django.contrib.staticfiles import finders

    r = Client().get("/manifest.webmanifest")
    for icon in json.loads(r.content)["icons"]:
        path = finders.find(icon["src"].removeprefix("/static/"))
        assert path, icon["src"]
        with open(path, "rb") as f:
            head = f.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        assert f"{width}x{height}" == icon["sizes"]


def test_a_browser_with_an_agent_session_is_told_why_the_customer_chat_is_not_shown(client: Client, ada, django_user_model):
    django_user_model.objects.create_user("grace", password="pw-grace-123", is_staff=True)
    client.get("/chat/", {"token": issue_customer_token(ada.id)})
    client.login(username="grace", password="pw-grace-123")
    r = client.get("/chat/")
    assert r.status_code == 409
    assert "private window" in r.content.decode()


def test_with_visitor_sign_up_off_there_is_no_form_and_no_new_customer(client: Client, settings):
    settings.PARLEY_VISITOR_SIGNUP = False
    assert client.get("/chat/").status_code == 401
    assert client.get("/chat/start/").status_code == 404
    assert client.post("/chat/start/", {"name": "Grace", "email": "grace@example.com"}).status_code == 404
    assert Customer.objects.count() == 0
