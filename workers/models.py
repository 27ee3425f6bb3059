"""The worker plumbing's tables: durable scheduled commands (workers.timers), a queue of workers.jobs."""

from __future__ import annotations

from django.db import models


class Timer(models.Model):
    """A scheduled command: ``kind`` with ``payload`` runs once at ``due_at`` (workers.timers).

    ``key`` names the cause (unique): scheduling the same cause twice keeps
    one timer, and the command it fires derives its event ids from it.
    """

    PENDING, FIRED, CANCELLED = "pending", "fired", "cancelled"

    key = models.CharField(max_length=200, primary_key=True)
    kind = models.CharField(max_length=100)
    subject = models.CharField(max_length=200)
    due_at = models.DateTimeField()
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, default=PENDING)
    created_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "parley_timers"
        indexes = [
            models.Index(fields=["state", "due_at"], name="parley_timers_due"),
            models.Index(fields=["subject", "kind"], name="parley_timers_subject"),
            models.Index(fields=["state", "done_at"], name="parley_timers_done"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} at {self.due_at} ({self.state})"
