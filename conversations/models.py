"""The workflow process manager's own state (consumer ``workflow``): who holds which
conversation, and whose turn it is, as of the log it has processed plus its
own decisions. Written only in its transactions, with its checkpoint."""

from __future__ import annotations

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
