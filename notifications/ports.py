"""What the notifications context needs from the rest of the system, as ports.

An email's links name pages and tokens that are the web adapter's and the
identity context's business: the chat link carries a token only identity
issues, and both links are URLs of the web app. Notifications asks through
``EmailLinks``, an interface it owns, which the composition root
(project.apps) fills at start-up.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol


class EmailLinks(Protocol):
    def chat(self, customer_id: uuid.UUID, *, at: dt.datetime) -> str:
        """The path (with its query) that opens the chat as this customer, for a link issued ``at``."""

    def unsubscribe(self, token: str) -> str:
        """The path of the unsubscribe page for an unsubscribe token (notifications.unsubscribe)."""

    def verify(self, token: str) -> str:
        """The path of the page that proves an address, for a confirmation token (notifications.verification)."""


_links: EmailLinks | None = None


def install(links: EmailLinks) -> None:
    global _links
    _links = links


def email_links() -> EmailLinks:
    if _links is None:
        raise RuntimeError("no email links installed: project.apps installs them when Django starts")
    return _links
