"""Events the Customer contact context publishes to the log."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from eventstore.events import DomainEvent, event


@event("CustomerRegistered", partitioned_by="customer_id", subject="customer_id",
       personal=("name", "email", "phone", "external_id"))
@dataclass(frozen=True)
class CustomerRegistered(DomainEvent):
    customer_id: uuid.UUID
    name: str
    email: str
    phone: str
    external_id: str | None


@event("ContactDetailsChanged", partitioned_by="customer_id", subject="customer_id",
       personal=("name", "email", "phone"))
@dataclass(frozen=True)
class ContactDetailsChanged(DomainEvent):
    """The full contact details after the change (not a diff)."""

    customer_id: uuid.UUID
    name: str
    email: str
    phone: str


def stream_id(customer_id: uuid.UUID) -> str:
    return f"customer-{customer_id}"


@event("EmailUnsubscribed", partitioned_by="customer_id", subject="customer_id", personal=("email",))
@dataclass(frozen=True)
class EmailUnsubscribed(DomainEvent):
    """The customer asked, through an email's unsubscribe link, for no more emails at ``email``.

    It names the address: the opt-out belongs to the mailbox that received
    the email, so a customer who later gives another address may be written
    to there, and one who gives this address back is not.
    """

    customer_id: uuid.UUID
    email: str


@event("EmailVerified", partitioned_by="customer_id", subject="customer_id", personal=("email",))
@dataclass(frozen=True)
class EmailVerified(DomainEvent):
    """The person who started this customer's conversation proved they hold ``email``: they opened
    the confirmation email's link in the browser that holds the conversation.

    Only an address a visitor typed needs it (one the host application gave is trusted as given);
    until then no conversation email goes to it.
    """

    customer_id: uuid.UUID
    email: str


@event("CustomerErased", partitioned_by="customer_id")
@dataclass(frozen=True)
class CustomerErased(DomainEvent):
    """The customer was erased: their data key is destroyed, so every earlier
    event about them reads back as ``eventstore.events.Erased``, and every read
    model and process manager forgets them when it reaches this event.

    Not itself about the customer (no subject): it must stay readable, or
    nobody would learn to forget. ``reason``: "request" (the API), "retention", or
    "restore" (made again after a restore of an older backup: ``reapply_erasures``).
    """

    customer_id: uuid.UUID
    reason: str
    erased_at: dt.datetime
