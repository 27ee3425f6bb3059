"""The email fallback's email over real SMTP: an aiosmtpd server receives it.

Run in the PostgreSQL + Redis pass (marked ``postgres``): the whole path,
API -> log -> process manager -> timer -> outbox -> SMTP, on the
production database.
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from notifications.models import EmailOutbox
from tests.support.mailflow import DELAY, agent_says, later, work

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Inbox:
    """aiosmtpd's handler: keeps what it was given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(settings) -> Iterator[Inbox]:
    inbox = Inbox(free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.DEFAULT_FROM_EMAIL = "Parley support <support@example.com>"
    settings.PARLEY_EMAIL_FALLBACK_SECONDS = DELAY.total_seconds()
    settings.PARLEY_PUBLIC_URL = "https://support.example.com"
    try:
        yield inbox
    finally:
        controller.stop()


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
