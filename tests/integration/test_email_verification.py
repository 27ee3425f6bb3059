"""An address a visitor typed is proved before any conversation email goes to it.

The probe this answers: a visitor signs up at /chat/start/ with a
stranger's address and the name "Parley Billing (verify your card in this
chat)"; an agent replies; Parley used to email the stranger from the
support sender, greeting them with that name, with a link into the
visitor's conversation. Now the stranger gets one confirmation email of
Parley's own words, no conversation email, and its link proves the address
only in the browser that started the conversation. A real SMTP server
(aiosmtpd) receives every email.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
from django.test import Client

from customers.models import Customer
from eventstore.models import StoredEvent
from notifications.models import EmailOutbox
from tests.conftest import Caller
from tests.support.mailflow import agent_says, customer_reads, later, now, work
from tests.support.smtp import Inbox, smtp  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

PHISHING_NAME = "Parley Billing (verify your card in this chat)"
STRANGER = "stranger@example.com"




def visitor_signs_up(name: str, address: str) -> tuple[Client, Caller]:
    """A browser that starts a chat with the form; the customer as an API caller too."""
    from accounts.tokens import issue_customer_token

    browser = Client()
    r = browser.post("/chat/start/", {"name": name, "email": address})
    assert r.status_code == 302, r.content
    customer = Customer.objects.get(email=address)
    return browser, Caller(Client(), issue_customer_token(customer.id), str(customer.id))


def moment() -> dt.datetime:
    """Just after now: what was queued a moment ago is due."""
    return now() + dt.timedelta(seconds=5)


def text_of(message: Any) -> str:
    return str(message.get_body(("plain",)).get_content()) + str(message.get_body(("html",)).get_content())


def verify_link(message: Any) -> str:
    found = re.search(r"https://support\.example\.com(/email/verify/[^/\s]+/)", text_of(message))
    assert found, text_of(message)
    return found.group(1)


def post_with_csrf(browser: Client, path: str) -> Any:
    page = browser.get(path)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token
    checked = Client(enforce_csrf_checks=True)
    checked.cookies = browser.cookies
    return checked.post(path, {"csrfmiddlewaretoken": token.group(1)})


def verified_events() -> int:
    return StoredEvent.objects.filter(event_type="EmailVerified").count()


def test_a_stranger_whose_address_a_visitor_typed_gets_only_parleys_confirmation_and_no_conversation(smtp, agent):
    visitor_browser, visitor = visitor_signs_up(PHISHING_NAME, STRANGER)
    assert work(moment()) == 1  # the confirmation, at once
    [confirmation] = smtp.messages()
    assert confirmation["To"] == STRANGER and confirmation["Subject"] == "Confirm your email address for support chat"
    body = text_of(confirmation)
    assert "Parley Billing" not in body and "card" not in body  # nothing the visitor wrote
    assert "/chat/?token=" not in body  # no way into the conversation

    agent_says(agent, visitor, "Thanks, we will look at your card")
    assert work(later()) == 0  # the streak's email is refused: the address is not proved
    assert len(smtp.received) == 1
    assert not EmailOutbox.objects.filter(key__startswith="email-fallback:").exists()

    # The stranger opens the link in their own browser: nothing is proved, nobody is signed in.
    stranger_browser = Client()
    refused = post_with_csrf(stranger_browser, verify_link(confirmation))
    assert refused.status_code == 403
    assert verified_events() == 0
    assert "parley_customer" not in {k.lower() for k in refused.cookies}
    assert stranger_browser.get("/chat/")["Location"] == "/chat/start/"
    assert work(later()) == 0 and len(smtp.received) == 1


def test_the_visitor_who_proves_the_address_from_their_chat_gets_conversation_emails_without_their_name(
    smtp, agent,
):
    visitor_browser, visitor = visitor_signs_up(PHISHING_NAME, "ada@example.com")
    assert work(moment()) == 1
    [confirmation] = smtp.messages()
    confirmed = post_with_csrf(visitor_browser, verify_link(confirmation))
    assert confirmed.status_code == 200 and "Address confirmed" in confirmed.content.decode()
    assert confirmed["Referrer-Policy"] == "no-referrer"
    assert verified_events() == 1
    assert post_with_csrf(visitor_browser, verify_link(confirmation)).status_code == 200
    assert verified_events() == 1  # proving twice records it once

    message_id = agent_says(agent, visitor, "Your refund is on its way")
    assert work(later()) == 1
    fallback = smtp.messages()[-1]
    assert fallback["To"] == "ada@example.com" and fallback["Subject"] == "Support answered you"
    body = text_of(fallback)
    assert "Your refund is on its way" in body and "https://support.example.com/chat/?token=pe." in body
    assert "Parley Billing" not in body  # the salutation names no one
    customer_reads(visitor, message_id)


def test_a_damaged_or_forged_confirmation_link_proves_nothing(smtp):
    visitor_browser, _ = visitor_signs_up("Ada", "ada@example.com")
    assert visitor_browser.get("/email/verify/not-a-token/").status_code == 404
    from notifications.verification import issue_verify_token

    other = issue_verify_token(uuid.uuid4(), "ada@example.com")  # signed, but for a conversation this browser is not
    assert post_with_csrf(visitor_browser, f"/email/verify/{other}/").status_code == 403
    assert verified_events() == 0


def test_an_address_the_host_application_gave_is_trusted_without_confirmation(smtp, customer, agent):
    agent_says(agent, customer, "Hello from support")
    assert work(later()) == 1
    [only] = smtp.messages()
    assert only["To"] == "ada@example.com" and only["Subject"] == "Support answered you"
    assert not EmailOutbox.objects.filter(key__startswith="email-verify:").exists()
