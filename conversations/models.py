"""The conversations context's tables that are not the log.

``Routing`` and ``AgentTurn`` are the workflow process manager's own state
(consumer ``workflow``): who holds which conversation, and whose turn it
is, as of the log it has processed plus its own decisions, written only in
its transactions, with its checkpoint. ``CannedResponse`` is the team's
saved replies (conversations.canned): configuration, not history."""

from __future__ import annotations

import uuid

from django.db import models


class Routing(models.Model):
    """One row per conversation the process manager has seen."""

    customer_id = models.UUIDField(primary_key=True)
    assignee_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    resolved = models.BooleanField(default=False)


class AgentTurn(models.Model):
    """When an agent last got a conversation by auto-assignment (a log position): the turn order."""

    agent_id = models.CharField(max_length=64, primary_key=True)
    last_turn = models.BigIntegerField(default=0)


class CannedResponse(models.Model):
    """A saved reply the team inserts by its shortcut (``/refund`` in the composer).

    A plain table, not event-sourced: nothing downstream reacts to it (no
    frame, push or webhook), and what a customer is sent is the message the
    agent writes from it, which the log keeps in full.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    #: Lower case, unique: ``/refund`` finds one reply.
    shortcut = models.CharField(max_length=32, unique=True)
    title = models.CharField(max_length=80)
    body = models.TextField()
    #: The agent who wrote it (a user id): they alone change it through the API.
    author_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"/{self.shortcut}: {self.title}"
