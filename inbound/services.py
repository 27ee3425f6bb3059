"""Receiving an inbound message exactly once.

The request path only claims the delivery's idempotency key and appends
``MessageSent``, in one transaction:

1. INSERT the claim ``(source, key)`` inside a savepoint. The unique
   constraint decides: a simultaneous copy blocks on the winner's
   uncommitted row (PostgreSQL) or waits for the single writer (SQLite),
   then fails with IntegrityError and reads the winner's row. No lookup
   before the insert, so there is no window between "check" and "insert".
2. Resolve the customer through the customers context (itself race-safe on
   the external id).
3. Send the message with a message id and an event id derived from the
   key, so that even without the claim row the chat command's own
   idempotency would recognise a redelivery.

If anything fails, the claim rolls back with the message, and the next
copy of the delivery can win. Anything slow (fetching more data from the
provider, attachments) belongs to a consumer of the log, not here.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from chat.commands import Actor, SendMessage
from chat.errors import MessageIdConflict
from chat.events import SenderKind
from chat.handlers import send_message
from customers.services import customer_register
from eventstore.events import Metadata
from inbound.models import InboundDelivery, KeyKind
from inbound.payload import InboundMessage

# Fixed forever: changing it would give redeliveries of already stored
# events new message ids (the claim rows would still hold the old ones).
NAMESPACE = uuid.UUID("581024ea-e19b-46d0-b5ba-5e5aa17de418")


@dataclass(frozen=True)
class Receipt:
    """What the provider is told: the message, and whether this copy was a repeat."""

    message_id: uuid.UUID
    duplicate: bool


def idempotency_key(message: InboundMessage, raw_body: bytes) -> tuple[KeyKind, str]:
    """The provider's event id, or the SHA-256 of the exact bytes it signed."""
    if message.event_id is not None:
        return KeyKind.EVENT_ID, message.event_id
    return KeyKind.BODY_SHA256, hashlib.sha256(raw_body).hexdigest()


def _name(*parts: str) -> str:
    # A JSON array cannot be read two ways, whatever the parts contain.
    return json.dumps(list(parts), separators=(",", ":"))


def message_id_for(source: str, key: str) -> uuid.UUID:
    """The message id of delivery ``key`` of ``source``: the same for every copy."""
    return uuid.uuid5(NAMESPACE, _name("message", source, key))


def event_id_for(source: str, key: str) -> uuid.UUID:
    """The id of the MessageSent event of that delivery (unique in the log)."""
    return uuid.uuid5(NAMESPACE, _name("MessageSent", source, key))


def customer_external_id(source: str, external_id: str) -> str:
    """The customers context's external id for a channel's own id.

    Namespaced by source, so "+441234" on an SMS gateway and "+441234" on
    another channel are two customers, never one by accident.
    """
    return f"{source}:{external_id}"


def inbound_message_receive(*, source: str, raw_body: bytes, message: InboundMessage) -> Receipt:
    """Store ``message`` from ``source`` once, however many copies arrive at once.

    ``raw_body`` must be the verified bytes the provider signed. Every copy
    is answered with the same message id; exactly one with duplicate=False.
    """
    kind, key = idempotency_key(message, raw_body)
    message_id = message_id_for(source, key)
    with transaction.atomic():
        claimed = _claim(
            source=source,
            key=key,
            kind=kind,
            message_id=message_id,
            body_sha256=hashlib.sha256(raw_body).hexdigest(),
        )
        if not claimed:
            winner = InboundDelivery.objects.filter(source=source, key=key).values_list("message_id", flat=True).get()
            return Receipt(winner, duplicate=True)

        customer = customer_register(
            name=message.name or message.external_id,
            external_id=customer_external_id(source, message.external_id),
            actor=f"inbound:{source}",
        ).customer
        sender = Actor(SenderKind.CUSTOMER, str(customer.id), customer.name)
        cmd = SendMessage(message_id, customer.id, sender, message.text, channel_sent_at=message.sent_at)
        try:
            outcome = send_message(
                cmd,
                metadata=Metadata(actor=f"inbound:{source}", correlation_id=message_id),
                event_id=event_id_for(source, key),
                adapter="webhook",
            )
        except MessageIdConflict:
            # Only reachable if claim rows were purged: the message exists
            # with the text of an earlier copy. It is still that delivery.
            return Receipt(message_id, duplicate=True)
    # appended=False: the claim was free but the message already existed
    # (claim rows purged); the chat command recognised the repeat.
    return Receipt(message_id, duplicate=not outcome.appended)


def _claim(*, source: str, key: str, kind: KeyKind, message_id: uuid.UUID, body_sha256: str) -> bool:
    """Insert the claim row; False if another copy holds it (insert-or-nothing)."""
    try:
        # The savepoint keeps the caller's transaction usable after the
        # IntegrityError, so it can go on to read the winner's row.
        with transaction.atomic():
            InboundDelivery.objects.create(
                source=source, key=key, key_kind=kind, message_id=message_id, body_sha256=body_sha256
            )
    except IntegrityError:
        return False
    return True
