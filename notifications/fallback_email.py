"""The email of an unread streak: what the email fallback timer does when it fires.

It reads the customer's current unread agent messages and contact details
from the read models and, unless there is nothing to say or nowhere to say
it, writes the rendered email to the outbox (``EmailOutbox``, keyed by the
timer's key) in the timer's own transaction: the email exists exactly when
the timer is marked fired. notifications.mailer sends it after commit.

Nothing to send is a refusal (a ``DomainError``): the timer is marked done
with the reason in its ``last_error`` (``refused: no_email_address``...).
"""

from __future__ import annotations

import datetime as dt
import uuid
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.template.loader import render_to_string

from kernel.errors import DomainError
from notifications import mailer
from notifications.fallback import EMAIL_FALLBACK_TIMER
from notifications.ports import email_links
from notifications.unsubscribe import issue_unsubscribe_token
from readmodels import selectors
from readmodels.folds import preview
from workers import timers


class NothingToEmail(DomainError):
    """The streak's email is moot: nothing unread, no address, an address not proved, or unsubscribed."""

    code = "nothing_to_email"


def public_url(path: str) -> str:
    return settings.PARLEY_PUBLIC_URL + path


def message_id_for(key: str) -> str:
    """The Message-ID of the streak's email: the same however often it is sent."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or urlsplit(settings.PARLEY_PUBLIC_URL).hostname
    return f"<{uuid.uuid5(uuid.NAMESPACE_URL, 'parley:' + key)}@{domain or 'parley.invalid'}>"


def compose(key: str, customer_id: uuid.UUID, now: dt.datetime) -> dict[str, Any]:
    """The outbox row for the streak ``key`` of ``customer_id`` (raises NothingToEmail)."""
    recipient = selectors.email_recipient(customer_id)
    if recipient is None or not recipient.email:
        raise NothingToEmail("the customer has no email address", code="no_email_address")
    if recipient.unsubscribed:
        raise NothingToEmail("the customer's address unsubscribed", code="unsubscribed")
    if not recipient.verified:
        # A visitor typed it and has not proved it theirs (notifications.verification).
        raise NothingToEmail("the customer's address is not confirmed", code="email_unverified")
    messages = selectors.unread_agent_messages(customer_id)
    if not messages:
        raise NothingToEmail("every message was read", code="nothing_unread")
    # Each agent by the name they are shown by now: never a login username (readmodels.names).
    senders = selectors.agent_names({m.sender_id for m in messages})
    links = email_links()
    unsubscribe = public_url(links.unsubscribe(issue_unsubscribe_token(customer_id, recipient.email)))
    # No salutation by name: nothing a visitor chose (a name can say anything) goes into an email.
    context = {
        "messages": [{"sender": senders.get(m.sender_id) or "Support", "body": preview(m.body, m.attachments),
                      "sent_at": m.sent_at} for m in messages],
        "count": len(messages),
        "chat_url": public_url(links.chat(customer_id, at=now)),
        "unsubscribe_url": unsubscribe,
        # Resolved meanwhile: the chat the link opens asks for a rating (docs/reports.md).
        "ask_rating": (selectors.conversation(customer_id) or {}).get("status") == "resolved",
    }
    subject = " ".join(render_to_string("notifications/email/fallback_subject.txt", context).split())
    return {
        "key": key,
        "customer_id": customer_id,
        "to": recipient.email,
        "subject": subject,
        "text": render_to_string("notifications/email/fallback.txt", context),
        "html": render_to_string("notifications/email/fallback.html", context),
        "headers": {
            "Message-ID": message_id_for(key),
            # RFC 8058: a mail client's own unsubscribe button POSTs to this URL.
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    }


def fallback_due(due: timers.Due, now: dt.datetime) -> None:
    """The email fallback timer's handler (registered by project.apps)."""
    row = compose(due.key, uuid.UUID(due.payload["customer_id"]), now)
    # The key is the outbox row's primary key: a handler run twice queues one email.
    mailer.queue(due.key, row, now)


def register() -> None:
    timers.register(EMAIL_FALLBACK_TIMER, fallback_due)
