"""Email backends for tests that need the sending to fail."""

from __future__ import annotations

from typing import Any

from django.core.mail.backends.base import BaseEmailBackend


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that refuses every email."""

    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("refused by the test backend")
