"""The links of the email fallback's emails: the chat link opens the chat as
that customer and expires; the unsubscribe link asks on GET, unsubscribes on
POST (one click, RFC 8058), and the unsubscription survives a rebuild."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.principals import CUSTOMER_COOKIE
from accounts.tokens import issue_chat_link_token, issue_customer_token
from eventstore.models import StoredEvent
from notifications.unsubscribe import issue_unsubscribe_token
from readmodels import selectors
from tests.support.mailflow import DELAY, agent_says, later, now, parts, work

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fallback_on(settings):
    settings.PARLEY_EMAIL_FALLBACK_SECONDS = DELAY.total_seconds()
    settings.PARLEY_PUBLIC_URL = "https://support.example.com"


def page_config(response) -> dict:
    page = response.content.decode()
    return json.loads(page.split('id="parley-config" type="application/json">')[1].split("</script>")[0])


def link_in(text: str, path: str) -> str:
    """The path and query of the first link to ``path`` in an email's text."""
    match = re.search(r"https://support\.example\.com(" + re.escape(path) + r"\S*)", text)
    assert match, text
    return match.group(1)


def test_the_emails_chat_link_opens_the_chat_as_that_customer(customer, agent, mailoutbox):
    agent_says(agent, customer)
    work(later())
    link = link_in(parts(mailoutbox[0])["text/plain"], "/chat/?token=")
    assert link in parts(mailoutbox[0])["text/html"].replace("&amp;", "&")
    browser = Client()
    r = browser.get(link)
    assert r.status_code == 302 and r["Location"] == "/chat/"
    assert CUSTOMER_COOKIE in r.cookies
    page = browser.get("/chat/")
    assert page.status_code == 200 and page_config(page)["customerId"] == customer.id


def test_a_chat_link_stops_working_after_its_max_age(customer, settings):
    settings.PARLEY_EMAIL_LINK_MAX_AGE = 3600
    issued = now() - dt.timedelta(seconds=3601)
    r = Client().get("/chat/", {"token": issue_chat_link_token(uuid.UUID(customer.id), at=issued)})
    assert r.status_code == 403 and CUSTOMER_COOKIE not in r.cookies
    assert "expired" in r.content.decode()
    fresh = now() - dt.timedelta(seconds=3500)
    assert Client().get("/chat/", {"token": issue_chat_link_token(uuid.UUID(customer.id), at=fresh)}).status_code == 302


def test_a_chat_link_token_is_not_a_customer_token_and_cannot_be_forged(customer):
    token = issue_chat_link_token(uuid.UUID(customer.id))
    r = Client().get("/api/v1/badge", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 401  # only the chat page takes it, and swaps it for a customer token
    forged = "pe." + issue_customer_token(uuid.UUID(customer.id))[3:]
    assert Client().get("/chat/", {"token": forged}).status_code == 403


def test_unsubscribe_asks_on_get_and_unsubscribes_on_post(customer, project):
    url = f"/email/unsubscribe/{issue_unsubscribe_token(uuid.UUID(customer.id), 'ada@example.com')}/"
    browser = Client(enforce_csrf_checks=True)
    r = browser.get(url)
    assert r.status_code == 200 and "ada@example.com" in r.content.decode() and "<form" in r.content.decode()
    assert r["Referrer-Policy"] == "no-referrer"
    assert StoredEvent.objects.filter(event_type="EmailUnsubscribed").count() == 0
    r = browser.post(url)
    assert r.status_code == 200 and "Unsubscribed" in r.content.decode()
    assert browser.post(url).status_code == 200  # again: nothing more recorded
    assert StoredEvent.objects.filter(event_type="EmailUnsubscribed").count() == 1
    project()
    assert selectors.email_recipient(uuid.UUID(customer.id)).unsubscribed


def test_one_click_unsubscribe_from_a_mail_client_and_no_more_emails(customer, agent, mailoutbox, project):
    agent_says(agent, customer)
    work(later())
    unsubscribe = mailoutbox[0].extra_headers["List-Unsubscribe"].strip("<>")
    path = unsubscribe.removeprefix("https://support.example.com")
    # What RFC 8058 has a mail client send: a POST with this body, no cookies, no CSRF token.
    r = Client(enforce_csrf_checks=True).post(path, "List-Unsubscribe=One-Click",
                                              content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200
    project()
    agent_says(agent, customer, "Are you there?")  # still the same streak: no second email anyway
    for mid in [m.message_id for m in selectors.unread_agent_messages(uuid.UUID(customer.id))]:
        assert customer.post(f"/api/v1/messages/{mid}/read").status_code == 200
    work(now())
    agent_says(agent, customer, "A new streak")
    assert work(later()) == 0
    assert len(mailoutbox) == 1


def test_an_unsubscription_survives_a_rebuild_and_binds_only_that_address(customer, project):
    Client().post(f"/email/unsubscribe/{issue_unsubscribe_token(uuid.UUID(customer.id), 'ada@example.com')}/")
    project()
    call_command("rebuild_readmodels", stdout=io.StringIO())
    assert selectors.email_recipient(uuid.UUID(customer.id)).unsubscribed
    from customers.services import customer_update

    customer_update(customer_id=uuid.UUID(customer.id), email="ada@new.example.com")
    project()
    assert not selectors.email_recipient(uuid.UUID(customer.id)).unsubscribed
    customer_update(customer_id=uuid.UUID(customer.id), email="ADA@example.com")
    project()
    assert selectors.email_recipient(uuid.UUID(customer.id)).unsubscribed


def test_a_forged_unsubscribe_link_changes_nothing(customer):
    token = issue_unsubscribe_token(uuid.UUID(customer.id), "ada@example.com")
    r = Client().post(f"/email/unsubscribe/{token[:-2]}xx/")
    assert r.status_code == 404
    assert StoredEvent.objects.filter(event_type="EmailUnsubscribed").count() == 0
