"""What an adversarial probe got through, each refused now: ids in
non-canonical spellings, floods of sends, and another site switching a
signed-in customer's conversation through a chat link."""

from __future__ import annotations

import json
import time
import types
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.principals import CUSTOMER_COOKIE
from eventstore.models import StoredEvent
from project.asgi import application
from realtime.dispatcher import stop_dispatchers
from tests.conftest import new_id

# -- ids: one spelling -------------------------------------------------------------------

NON_CANONICAL = [
    lambda u: "{" + u + "}",
    lambda u: "urn:uuid:" + u,
    lambda u: u.replace("-", ""),
    lambda u: " " + u,
    lambda u: u + "\n",
]


@pytest.mark.django_db
@pytest.mark.parametrize("spell", NON_CANONICAL)
def test_a_message_id_in_another_spelling_is_refused_and_nothing_is_stored(customer, spell):
    r = customer.post("/api/v1/messages", {"message_id": spell(new_id()), "body": "hello"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_field"
    assert "8-4-4-4-12" in r.json()["error"]["detail"]
    assert StoredEvent.objects.filter(event_type="MessageSent").count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("spell", NON_CANONICAL[:3])
def test_ids_in_paths_take_one_spelling_too(customer, agent, spell):
    sent = customer.post("/api/v1/messages", {"message_id": (mid := new_id()), "body": "hello"})
    assert sent.status_code == 201
    r = customer.patch(f"/api/v1/messages/{spell(mid)}", {"body": "edited"})
    assert r.status_code == 400, r.content
    r = agent.get(f"/api/v1/conversations/{spell(customer.id)}")
    assert r.status_code == 400, r.content
    assert StoredEvent.objects.filter(event_type="MessageEdited").count() == 0


@pytest.mark.django_db
def test_upper_case_hex_is_the_same_id_and_comes_back_lower_case(customer):
    mid = new_id()
    first = customer.post("/api/v1/messages", {"message_id": mid.upper(), "body": "hello"})
    again = customer.post("/api/v1/messages", {"message_id": mid, "body": "hello"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["message"]["message_id"] == mid
    assert StoredEvent.objects.filter(event_type="MessageSent").count() == 1


# -- a send budget per identity, HTTP and websocket together ---------------------------------


@pytest.fixture
def one_window(monkeypatch):
    """The rate limits' clock stands still, half a minute into a window: a test's sends all
    count in one window. (A window restarts every minute on the clock; a slow run whose
    sends straddled that moment counted the later ones afresh and was let through.)"""
    import accounts.ratelimit as ratelimit

    now = int(time.time()) // 60 * 60 + 30
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now))


@pytest.mark.django_db
def test_a_customer_past_the_send_budget_is_refused_with_a_retry_hint(customer, settings, one_window):
    settings.PARLEY_CUSTOMER_SENDS_PER_MINUTE = 5
    answers = [customer.post("/api/v1/messages", {"message_id": new_id(), "body": f"m{i}"}) for i in range(8)]
    assert [a.status_code for a in answers] == [201] * 5 + [429] * 3
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert StoredEvent.objects.filter(event_type="MessageSent").count() == 5


@pytest.mark.django_db
def test_agents_have_a_larger_budget_of_their_own(customer, agent, settings, one_window):
    settings.PARLEY_CUSTOMER_SENDS_PER_MINUTE = 2
    settings.PARLEY_AGENT_SENDS_PER_MINUTE = 4
    for _ in range(2):
        assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": "q"}).status_code == 201
    assert customer.post("/api/v1/messages", {"message_id": new_id(), "body": "q"}).status_code == 429
    url = f"/api/v1/conversations/{customer.id}/messages"
    codes = [agent.post(url, {"message_id": new_id(), "body": "a"}).status_code for _ in range(5)]
    assert codes == [201] * 4 + [429]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_socket_and_http_share_one_budget(customer, settings, one_window):
    settings.PARLEY_CUSTOMER_SENDS_PER_MINUTE = 3
    try:
        ws = WebsocketCommunicator(application, f"/ws/v1/?token={customer.token}")
        assert (await ws.connect())[0]
        for i in range(2):
            await ws.send_json_to({"type": "message.send", "message_id": new_id(), "body": f"ws {i}"})
            assert json.loads(await ws.receive_from(timeout=5))["type"] == "ack"
        r = await sync_to_async(customer.post)("/api/v1/messages", {"message_id": new_id(), "body": "http"})
        assert r.status_code == 201
        ref = new_id()
        await ws.send_json_to({"type": "message.send", "message_id": ref, "body": "one too many"})
        while (frame := json.loads(await ws.receive_from(timeout=5)))["type"] != "error":
            pass
        assert (frame["code"], frame["ref"]) == ("rate_limited", ref)
        assert 1 <= frame["retry_after"] <= 60
        assert await sync_to_async(StoredEvent.objects.filter(event_type="MessageSent").count)() == 3
        await ws.disconnect()
    finally:
        await stop_dispatchers()


# -- an edit budget (HTTP and websocket together) and a search budget ---------------------------


@pytest.mark.django_db
def test_a_loop_of_edits_to_one_message_is_refused_past_the_edit_budget_and_stores_nothing(customer, settings):
    settings.PARLEY_CUSTOMER_EDITS_PER_MINUTE = 5
    message_id = new_id()
    assert customer.post("/api/v1/messages", {"message_id": message_id, "body": "v0"}).status_code == 201
    answers = [customer.patch(f"/api/v1/messages/{message_id}", {"body": f"v{i} " + "x" * 3990})
               for i in range(1, 9)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    assert answers[-1].json()["error"]["code"] == "rate_limited" and 1 <= int(answers[-1]["Retry-After"]) <= 60
    assert StoredEvent.objects.filter(event_type="MessageEdited").count() == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_edits_on_the_socket_and_over_http_share_one_budget(customer, settings):
    settings.PARLEY_CUSTOMER_EDITS_PER_MINUTE = 3
    message_id = new_id()
    r = await sync_to_async(customer.post)("/api/v1/messages", {"message_id": message_id, "body": "v0"})
    assert r.status_code == 201
    try:
        ws = WebsocketCommunicator(application, f"/ws/v1/?token={customer.token}")
        assert (await ws.connect())[0]
        for i in range(2):
            await ws.send_json_to({"type": "message.edit", "message_id": message_id, "body": f"ws {i}"})
            while (frame := json.loads(await ws.receive_from(timeout=5)))["type"] != "ack":
                pass
        r = await sync_to_async(customer.patch)(f"/api/v1/messages/{message_id}", {"body": "http"})
        assert r.status_code == 200
        await ws.send_json_to({"type": "message.edit", "message_id": message_id, "body": "one too many"})
        while (frame := json.loads(await ws.receive_from(timeout=5)))["type"] != "error":
            pass
        assert (frame["code"], frame["ref"]) == ("rate_limited", message_id)
        r = await sync_to_async(customer.patch)(f"/api/v1/messages/{message_id}", {"body": "and over http"})
        assert r.status_code == 429
        assert await sync_to_async(StoredEvent.objects.filter(event_type="MessageEdited").count)() == 3
        await ws.disconnect()
    finally:
        await stop_dispatchers()


@pytest.mark.django_db
def test_searches_past_the_search_budget_are_refused(customer, agent, settings):
    settings.PARLEY_CUSTOMER_SEARCHES_PER_MINUTE = 3
    settings.PARLEY_AGENT_SEARCHES_PER_MINUTE = 4
    codes = [customer.get("/api/v1/messages/search", q=f"word{i}").status_code for i in range(5)]
    assert codes == [200] * 3 + [429] * 2
    refused = customer.get("/api/v1/messages/search", q="again")
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) >= 1
    assert [agent.get("/api/v1/search", q="x").status_code for _ in range(5)] == [200] * 4 + [429]


@pytest.mark.django_db
def test_a_query_of_too_many_words_is_refused_before_it_reaches_the_index(customer):
    r = customer.get("/api/v1/messages/search", q=" ".join(f"w{i}" for i in range(40)))
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_parameter")


# -- a chat link from another site does not switch a signed-in customer silently ---------------


def signed_in_as(customer) -> Client:
    """A browser holding ``customer``'s chat cookie (from opening their link here)."""
    browser = Client(enforce_csrf_checks=True)
    r = browser.get(f"/chat/?token={customer.token}", HTTP_SEC_FETCH_SITE="cross-site")
    assert r.status_code == 302 and CUSTOMER_COOKIE in r.cookies
    return browser


def cookie_customer(browser: Client) -> str:
    from web.identity import cookie_customer_id

    class _Request:
        COOKIES = {CUSTOMER_COOKIE: browser.cookies[CUSTOMER_COOKIE].value}

    return str(cookie_customer_id(_Request()))  # type: ignore[arg-type]


@pytest.mark.django_db
def test_another_sites_link_for_another_customer_asks_first_and_switches_nothing(make_customer):
    victim, attacker = make_customer("Vicky Victim", "v@example.com"), make_customer("Mallory", "m@example.com")
    browser = signed_in_as(victim)
    r = browser.get(f"/chat/?token={attacker.token}", HTTP_SEC_FETCH_SITE="cross-site")
    assert r.status_code == 200
    assert CUSTOMER_COOKIE not in r.cookies  # nothing switched
    page = r.content.decode()
    assert "Open another conversation?" in page and "Vicky Victim" in page and "Mallory" in page
    assert r["Referrer-Policy"] == "no-referrer"
    assert cookie_customer(browser) == victim.id
    # The same without Sec-Fetch-Site and without a Referer from this site: asked too.
    r = browser.get(f"/chat/?token={attacker.token}")
    assert r.status_code == 200 and CUSTOMER_COOKIE not in r.cookies


@pytest.mark.django_db
def test_the_person_confirms_with_a_post_from_this_site(make_customer):
    victim, other = make_customer("Vicky", "v@example.com"), make_customer("Otto", "o@example.com")
    browser = signed_in_as(victim)
    page = browser.get(f"/chat/?token={other.token}", HTTP_SEC_FETCH_SITE="cross-site").content.decode()
    csrf = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    # Without the CSRF token (another site posting the form): refused, nothing switched.
    forged = browser.post("/chat/switch/", {"token": other.token})
    assert forged.status_code == 403 and cookie_customer(browser) == victim.id
    r = browser.post("/chat/switch/", {"token": other.token, "csrfmiddlewaretoken": csrf})
    assert r.status_code == 302 and r["Location"] == "/chat/"
    assert cookie_customer(browser) == other.id


@pytest.mark.django_db
@pytest.mark.parametrize("fetch_site", ["same-origin", "none"])
def test_the_persons_own_navigation_switches_without_asking(make_customer, fetch_site):
    first, second = make_customer("First", "f@example.com"), make_customer("Second", "s@example.com")
    browser = signed_in_as(first)
    r = browser.get(f"/chat/?token={second.token}", HTTP_SEC_FETCH_SITE=fetch_site)
    assert r.status_code == 302 and cookie_customer(browser) == second.id


@pytest.mark.django_db
def test_a_host_applications_link_still_signs_in_a_browser_without_a_conversation(customer):
    browser = Client()
    r = browser.get(f"/chat/?token={customer.token}", HTTP_SEC_FETCH_SITE="cross-site")
    assert r.status_code == 302 and cookie_customer(browser) == customer.id
    # And the same customer's link again (a second tab): no question either.
    r = browser.get(f"/chat/?token={customer.token}", HTTP_SEC_FETCH_SITE="cross-site")
    assert r.status_code == 302


@pytest.mark.django_db
def test_an_invalid_token_posted_to_the_switch_changes_nothing(customer):
    browser = signed_in_as(customer)
    browser.handler.enforce_csrf_checks = False
    r = browser.post("/chat/switch/", {"token": "pc.forged:abc:def"})
    assert r.status_code == 403 and cookie_customer(browser) == customer.id
    assert uuid.UUID(customer.id)
