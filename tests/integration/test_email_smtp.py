"""The email fallback's email over real SMTP: an aiosmtpd server receives it.

Run in the PostgreSQL + Redis pass (marked ``postgres``): the whole path,
API -> log -> process manager -> timer -> outbox -> SMTP, on the
production database.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from notifications.models import EmailOutbox
from tests.support.mailflow import agent_says, later, work
from tests.support.smtp import free_port, smtp  # noqa: F401  (fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]




def test_an_unread_streak_arrives_as_one_multipart_email_over_smtp(smtp, customer, agent):
    agent_says(agent, customer, "Your refund is on its way")
    agent_says(agent, customer, "<script>alert(1)</script>")
    assert work(later()) == 1
    assert work(later()) == 0
    [(mail_from, rcpt_tos, raw)] = smtp.received
    assert (mail_from, rcpt_tos) == ("support@example.com", ["ada@example.com"])
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Parley support <support@example.com>"
    assert message["Subject"] == "Support sent you 2 messages"
    assert message["Message-ID"] == EmailOutbox.objects.get().headers["Message-ID"]
    assert message["List-Unsubscribe"].strip().startswith("<https://support.example.com/email/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Your refund is on its way" in text and "https://support.example.com/chat/?token=pe." in text
    assert "Your refund is on its way" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert EmailOutbox.objects.get().state == EmailOutbox.SENT


def test_an_smtp_server_that_is_away_leaves_the_email_to_retry(smtp, customer, agent, settings):
    settings.EMAIL_PORT = free_port()  # nobody listens there
    agent_says(agent, customer)
    at = later()
    assert work(at) == 0
    row = EmailOutbox.objects.get()
    assert row.state == EmailOutbox.PENDING and row.attempts == 1
    settings.EMAIL_PORT = smtp.port
    from notifications import mailer

    assert mailer.send_due(now=row.next_attempt_at) == 1
    assert len(smtp.received) == 1
