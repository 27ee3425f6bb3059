"""Proving an address a visitor typed: the confirmation email and its token.

A visitor can type anyone's address. Before any conversation email goes
there, Parley sends one confirmation email (queued by the email fallback
process manager when a visitor registers with an address) whose link
carries this token: the customer and the address, signed with
``DJANGO_SECRET_KEY`` under a salt of its own, valid
``PARLEY_EMAIL_LINK_MAX_AGE`` seconds. The link proves the address only
when it is opened in the browser that holds that customer's conversation
(web.verify checks the chat cookie): so whoever proves the address is the
person who started the conversation, and a stranger who got the email
cannot be put into someone else's conversation by it.

The confirmation email carries nothing the visitor wrote (no name, no
message): a stranger receives Parley's own words only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from notifications.ports import email_links
from notifications.signed_address import read_address, sign_address
from notifications.unsubscribe import issue_unsubscribe_token

_SALT = "parley.email.verify"


@dataclass(frozen=True)
class AddressToProve:
    customer_id: uuid.UUID
    email: str


class InvalidVerifyToken(Exception):
    """Forged, damaged, expired, or not a confirmation token."""


def issue_verify_token(customer_id: uuid.UUID, email: str) -> str:
    return sign_address(_SALT, customer_id, email)


def verify_verify_token(token: str) -> AddressToProve:
    try:
        return AddressToProve(*read_address(_SALT, token, settings.PARLEY_EMAIL_LINK_MAX_AGE))
    except ValueError:
        raise InvalidVerifyToken("not a valid confirmation link") from None


def confirmation_key(customer_id: uuid.UUID, email: str) -> str:
    """The outbox key of the confirmation email: one per customer and address."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]
    return f"email-verify:{customer_id}:{digest}"


def compose_confirmation(customer_id: uuid.UUID, email: str) -> dict[str, Any]:
    """The outbox row of the confirmation email (notifications.mailer sends it)."""
    from notifications.fallback_email import message_id_for, public_url

    key = confirmation_key(customer_id, email)
    links = email_links()
    unsubscribe = public_url(links.unsubscribe(issue_unsubscribe_token(customer_id, email)))
    context = {
        "verify_url": public_url(links.verify(issue_verify_token(customer_id, email))),
        "site_url": settings.PARLEY_PUBLIC_URL,
        "unsubscribe_url": unsubscribe,
        "days": max(1, settings.PARLEY_EMAIL_LINK_MAX_AGE // 86400),
    }
    return {
        "key": key,
        "customer_id": customer_id,
        "to": email,
        "subject": " ".join(render_to_string("notifications/email/verify_subject.txt", context).split()),
        "text": render_to_string("notifications/email/verify.txt", context),
        "html": render_to_string("notifications/email/verify.html", context),
        "headers": {
            "Message-ID": message_id_for(key),
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    }


def queue_confirmation(customer_id: uuid.UUID, email: str, now: dt.datetime) -> None:
    """Queue the confirmation email, in the caller's transaction (a key queued already is left alone)."""
    from notifications import mailer

    row = compose_confirmation(customer_id, email)
    mailer.queue(row["key"], row, now)
