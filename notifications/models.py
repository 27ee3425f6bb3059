"""Push subscriptions and the delivery outbox.

``PushSubscription`` is one browser/device endpoint owned by one customer.
Besides the keys it carries what its delivery lane knows of it: when it may
be tried again after a 429/5xx (``hold_until``), and the last badge the
push service accepted for it (so a device's count never goes backwards).

``PushDelivery`` is the outbox: one row per (event, subscription), written
by the process manager in the transaction that advances its checkpoint, and
finished exactly once by a delivery worker. Its rows are a queue of
workers.jobs whose lanes are devices: ``due_at`` and ``lease_owner`` are
the queue's.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class PushSubscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    customer_id = models.UUIDField(db_index=True)
    endpoint = models.CharField(max_length=2048, unique=True)
    p256dh = models.CharField(max_length=100)
    auth = models.CharField(max_length=40)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    # -- delivery lane (written by delivery workers only)
    # The previous release leased devices rather than rows: its leases are
    # honoured (never taken) while it may run beside this one, and the
    # columns go in a later release.
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    hold_until = models.DateTimeField(null=True, blank=True)
    # The newest badge the push service accepted for this device, in log
    # reading order; null until the first push.
    badge_unread = models.PositiveIntegerField(null=True, blank=True)
    badge_tx = models.BigIntegerField(null=True, blank=True)
    badge_position = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "parley_push_subscriptions"

    def __str__(self) -> str:
        return f"{self.id} ({self.customer_id})"

    def subscription_info(self) -> dict[str, object]:
        """The shape pywebpush takes (the browser's ``PushSubscription.toJSON()``)."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"  # the push service accepted it (201/202)
    SUPERSEDED = "superseded"  # a badge-only update overtaken by a newer push to the same device
    DROPPED = "dropped"  # not needed any more (message read, badge unchanged, expired); see reason
    DEAD = "dead"  # refused for good or out of retries; see reason


class PushDelivery(models.Model):
    """One intended push: this event's badge, to this subscription."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    subscription_id: uuid.UUID
    subscription = models.ForeignKey(PushSubscription, on_delete=models.CASCADE, related_name="deliveries")
    customer_id = models.UUIDField()
    # The reading-order cursor of the event, so a lane sends in log order.
    tx = models.BigIntegerField()
    position = models.BigIntegerField()
    unread = models.PositiveIntegerField()
    # Set for a new agent message: message_id, sender_name, preview, sent_at.
    message = models.JSONField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()
    #: When it may be sent: queued, delayed (PUSH_DELAY_SECONDS), retried, or the end of its lease.
    due_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    state = models.CharField(max_length=12, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=300, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)
    #: The worker holding its lease ("" when none); the database default keeps inserts that do not name it working.
    lease_owner = models.CharField(max_length=100, blank=True, default="", db_default="")

    class Meta:
        db_table = "parley_push_deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "subscription"], name="push_delivery_once_per_event"),
        ]
        indexes = [
            # The queue's claim order (workers.jobs): a claim reads the first few rows, not every pending one.
            models.Index(
                fields=["due_at", "id"], name="push_delivery_pending_order", condition=Q(state=DeliveryState.PENDING)
            ),
            models.Index(fields=["subscription", "state", "tx", "position"], name="push_delivery_lane"),
            models.Index(
                fields=["subscription", "id"], name="push_delivery_lane_order", condition=Q(state=DeliveryState.PENDING)
            ),
            models.Index(fields=["state", "finished_at"], name="push_delivery_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.state} event {self.event_id} -> {self.subscription_id}"


class EmailOutbox(models.Model):
    """One email to send, written with the timer that decided it and sent
    after commit by notifications.mailer. ``key`` is the timer's key: one
    email per unread streak, even if the timer's handler runs twice. A queue
    of workers.jobs: ``next_attempt_at`` is its due time (a claim moves it to
    the end of the lease), ``lease_owner`` the lease's holder."""

    PENDING, SENT, DEAD = "pending", "sent", "dead"

    key = models.CharField(max_length=200, primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    html = models.TextField()
    #: Extra headers, Message-ID among them: a resend after a crash carries the same one.
    headers = models.JSONField(default=dict)
    state = models.CharField(max_length=10, default=PENDING)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    #: When it was sent or given up (purged after a while).
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True, default="", db_default="")

    class Meta:
        db_table = "parley_email_outbox"
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="parley_email_outbox_due"),
            models.Index(fields=["state", "finished_at"], name="parley_email_outbox_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.key} to {self.to} ({self.state})"


class EmailStreak(models.Model):
    """A customer's unread streak that the email fallback has started a timer for
    (notifications.fallback): from the first agent message they left unread to
    the read that brought their badge back to 0. The process manager's own
    state, written with its checkpoint; it holds ids only."""

    customer_id = models.UUIDField(primary_key=True)
    #: The agent message that started it (the timer's key names it too).
    message_id = models.UUIDField()
    started_at = models.DateTimeField()

    class Meta:
        db_table = "parley_email_streaks"

    def __str__(self) -> str:
        return f"streak of {self.customer_id} from {self.message_id}"
