"""A real SMTP server for the email tests (aiosmtpd on a free port), and the
settings that send Django's email to it."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.mailflow import DELAY


class Inbox:
    """aiosmtpd's handler: keeps what it was given (sender, recipients, the raw message)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def messages(self) -> list[Any]:
        """Every message received, parsed."""
        return [email.message_from_bytes(raw, policy=email.policy.default) for _, _, raw in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp(settings: Any) -> Iterator[Inbox]:
    """Django's email goes to a real SMTP server of the test's own; the fallback's delay is mailflow's."""
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
