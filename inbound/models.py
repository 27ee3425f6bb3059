"""The idempotency record of inbound deliveries."""

from __future__ import annotations

from django.db import models


class KeyKind(models.TextChoices):
    EVENT_ID = "event_id", "provider event id"
    BODY_SHA256 = "body_sha256", "SHA-256 of the raw body"


class InboundDelivery(models.Model):
    """One row per distinct delivery of a source: the claim on its idempotency key.

    Inserted in the same transaction that appends the message, so the row
    exists exactly when the message does; the unique (source, key)
    constraint, not a lookup, decides which of several simultaneous copies
    wins. Rows are never updated.
    """

    id = models.BigAutoField(primary_key=True)
    source = models.CharField(max_length=32)
    # The provider's event_id, or the hex SHA-256 of the raw body without one.
    key = models.CharField(max_length=200)
    key_kind = models.CharField(max_length=16, choices=KeyKind.choices)
    message_id = models.UUIDField()
    # Kept even when the key is an event id, to tell a redelivery with a
    # changed body from an identical one when investigating a provider.
    body_sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "parley_inbound_deliveries"
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="parley_inbound_source_key"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.key} -> {self.message_id}"
