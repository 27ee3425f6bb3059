"""Webhook endpoints and the outbound delivery outbox.

``WebhookEndpoint`` is a URL the host application registered with the
integration key, the event types it wants, and its signing secret (kept
in clear: an HMAC needs it; after a rotation the previous one signs too
until ``previous_secret_until``).

``WebhookDelivery`` is the outbox: one row per (event, endpoint), written by
the process manager in the transaction that advances its checkpoint, and
finished once by a delivery worker. It is a queue of workers.jobs: a lane
is (endpoint, customer), so only the oldest pending row of a lane may be
sent and a customer's events reach an endpoint in log order; lanes are
grouped by endpoint, so a slow endpoint holds only its own share of the
delivery threads.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    url = models.CharField(max_length=2048)
    events = models.JSONField()  # the webhook event types, e.g. ["message.created"]
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    #: Set when the receiver answered 410 Gone: nothing more is queued or sent.
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        db_table = "parley_webhook_endpoints"

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"


class WebhookState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up (out of time, or the endpoint was disabled); see reason


class WebhookDelivery(models.Model):
    """One event to send to one endpoint, and what became of it."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    endpoint_id: uuid.UUID
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    customer_id = models.UUIDField()
    event_type = models.CharField(max_length=40)
    #: The JSON body, exactly as it is signed and sent (the same bytes on every attempt).
    body = models.TextField()
    tx = models.BigIntegerField()
    position = models.BigIntegerField()
    created_at = models.DateTimeField()
    #: When it may be sent: queued, retried, or the end of its lease.
    due_at = models.DateTimeField()
    give_up_at = models.DateTimeField()

    state = models.CharField(max_length=12, choices=WebhookState.choices, default=WebhookState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True, default="")
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    #: The lease's end as the previous release reads it (a lease is ``due_at``
    #: moved ahead); still written while both may run.
    lease_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "parley_webhook_deliveries"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "endpoint"], name="webhook_delivery_once_per_event"),
        ]
        indexes = [
            models.Index(
                fields=["endpoint", "customer_id", "id"], name="webhook_delivery_lane",
                condition=Q(state=WebhookState.PENDING),
            ),
            models.Index(fields=["endpoint", "id"], name="webhook_delivery_recent"),
            # The queue's claim order (workers.jobs): a claim reads the first few rows, not every pending one.
            models.Index(
                fields=["due_at", "id"], name="webhook_delivery_pending_due", condition=Q(state=WebhookState.PENDING)
            ),
            models.Index(fields=["state", "finished_at"], name="webhook_delivery_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.event_type} {self.state} -> {self.endpoint_id}"
