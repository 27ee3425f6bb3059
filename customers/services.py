"""Customer use cases. Views call these; nothing else writes customers."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from customers.events import (
    ContactDetailsChanged,
    CustomerErased,
    CustomerRegistered,
    EmailUnsubscribed,
    EmailVerified,
    stream_id,
)
from customers.models import Customer
from eventstore import keys
from eventstore.events import Metadata
from eventstore.store import EventStore
from kernel.errors import DomainError
from workers import timers

_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{2,30}$")


class CustomerError(DomainError):
    """Contact details the customers context refuses."""

    code = "invalid_customer"


class CustomerNotFound(CustomerError):
    code = "customer_not_found"
    status = 404

    def __init__(self, customer_id: object) -> None:
        super().__init__(f"no customer {customer_id}")


@dataclass(frozen=True)
class CustomerRegistration:
    customer: Customer
    created: bool


def _clean_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise CustomerError("name must be 1 to 200 characters", code="invalid_name")
    return name


def _clean_email(email: str) -> str:
    email = email.strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise CustomerError(f"{email!r} is not an email address", code="invalid_email") from None
    return email


def _clean_phone(phone: str) -> str:
    phone = phone.strip()
    if phone and not _PHONE.match(phone):
        raise CustomerError(f"{phone!r} is not a phone number", code="invalid_phone")
    return phone


def customer_register(
    *,
    name: str,
    email: str = "",
    phone: str = "",
    external_id: str | None = None,
    actor: str = "system",
) -> CustomerRegistration:
    """Register a customer, or find the one already registered under ``external_id``.

    Safe under concurrency: two registrations of the same external id at
    once create one customer (the unique constraint decides, not a lookup).
    """
    name, email, phone = _clean_name(name), _clean_email(email), _clean_phone(phone)
    if external_id is not None:
        external_id = external_id.strip()
        if not 1 <= len(external_id) <= 200:
            raise CustomerError("external_id must be 1 to 200 characters", code="invalid_external_id")
        existing = Customer.objects.filter(external_id=external_id).first()
        if existing:
            return CustomerRegistration(existing, created=False)
    try:
        with transaction.atomic():
            customer = Customer.objects.create(name=name, email=email, phone=phone, external_id=external_id)
            EventStore().append(
                stream_id(customer.id),
                [CustomerRegistered(customer.id, name, email, phone, external_id)],
                expected_version=0,
                metadata=Metadata(actor=actor),
            )
    except IntegrityError:
        # Another request registered this external id first; it committed before we got here.
        return CustomerRegistration(Customer.objects.get(external_id=external_id), created=False)
    return CustomerRegistration(customer, created=True)


def customer_update(
    *,
    customer_id: uuid.UUID,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    actor: str = "system",
) -> Customer:
    """Change contact details; publishes ContactDetailsChanged when something changed."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(id=customer_id).first()
        if customer is None:
            raise CustomerNotFound(customer_id)
        new = (
            _clean_name(name) if name is not None else customer.name,
            _clean_email(email) if email is not None else customer.email,
            _clean_phone(phone) if phone is not None else customer.phone,
        )
        if new == (customer.name, customer.email, customer.phone):
            return customer
        customer.name, customer.email, customer.phone = new
        customer.save(update_fields=["name", "email", "phone", "updated_at"])
        store = EventStore()
        stream = stream_id(customer.id)
        store.append(
            stream,
            [ContactDetailsChanged(customer.id, *new)],
            expected_version=store.stream_version(stream),
            metadata=Metadata(actor=actor),
        )
    return customer


def customer_unsubscribe_email(*, customer_id: uuid.UUID, email: str, actor: str = "customer") -> bool:
    """Record that ``email`` wants no more emails for this customer; False if it was already recorded.

    An event in the customer's stream, not a flag in a table: it is part of
    the history a rebuild replays, and says when and which address opted out.
    """
    email = email.strip()
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(id=customer_id).first()
        if customer is None:
            raise CustomerNotFound(customer_id)
        store = EventStore()
        stream = stream_id(customer.id)
        done = {
            r.event.email.lower()
            for r in store.read_stream(stream)
            if isinstance(r.event, EmailUnsubscribed)
        }
        if email.lower() in done:
            return False
        store.append(
            stream,
            [EmailUnsubscribed(customer.id, email)],
            expected_version=store.stream_version(stream),
            metadata=Metadata(actor=actor),
        )
    return True


class EmailChanged(CustomerError):
    code = "email_changed"
    status = 409


def customer_verify_email(*, customer_id: uuid.UUID, email: str, actor: str = "customer") -> bool:
    """Record that ``email``, the customer's current address, is proved theirs; False if it was already.

    An address that is no longer the customer's (changed since the confirmation
    email was sent) is refused: proving an old address proves nothing now.
    """
    email = email.strip()
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(id=customer_id).first()
        if customer is None:
            raise CustomerNotFound(customer_id)
        if customer.email.strip().lower() != email.lower():
            raise EmailChanged("this address is no longer the one of this conversation")
        store = EventStore()
        stream = stream_id(customer.id)
        if any(isinstance(r.event, EmailVerified) and r.event.email.lower() == email.lower()
               for r in store.read_stream(stream)):
            return False
        store.append(
            stream,
            [EmailVerified(customer.id, email)],
            expected_version=store.stream_version(stream),
            metadata=Metadata(actor=actor),
        )
    return True


def customer_get(*, customer_id: uuid.UUID) -> Customer:
    customer = Customer.objects.filter(id=customer_id).first()
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


def customer_erase(*, customer_id: uuid.UUID, reason: str = "request", actor: str = "system") -> bool:
    """Erase a customer: destroy their data key, delete their contact record, publish CustomerErased.

    Every event about them reads back as ``Erased`` from the moment this
    commits; the read models and process managers forget them when they
    reach CustomerErased (docs/privacy.md). True if this erased them, False
    if they were erased already; CustomerNotFound if no such customer ever
    existed.

    A customer erased already is made erased again where that no longer
    holds, which only a restore of a backup older than the erasure does
    (docs/operations.md): a contact record that came back is deleted, their
    timers cancelled again, and CustomerErased appended if the log lost it.
    Otherwise nothing changes.
    """
    subject = str(customer_id)
    store = EventStore()
    stream = stream_id(customer_id)
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(id=customer_id).first()
        if customer is None and not keys.for_reading([subject]).ciphers:
            raise CustomerNotFound(customer_id)  # neither a contact record nor a key: never existed
        erased = keys.erase(subject)
        announced = not erased and store.stream_has(stream, CustomerErased.event_type)
        if announced and customer is None:
            return False
        if customer is not None:
            customer.delete()
        timers.cancel_subject(subject)  # snoozes, first-response clocks, email streaks: moot
        if not announced:
            store.append(
                stream,
                [CustomerErased(customer_id, reason, dt.datetime.now(dt.timezone.utc))],
                expected_version=store.stream_version(stream),
                metadata=Metadata(actor=actor),
            )
    return erased


def customer_is_erased(*, customer_id: uuid.UUID) -> bool:
    return keys.is_erased(str(customer_id))
