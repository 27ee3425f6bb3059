"""Adapters between contexts, installed by the composition root (project.apps)."""

from __future__ import annotations

import uuid

from accounts import presence
from conversations.commands import Agent
from customers.directory import KnownCustomers


class AgentsFromIdentity:
    """The conversations context's AgentDirectory, answered by the identity context."""

    def agent(self, agent_id: str) -> Agent | None:
        found = presence.active_agent(agent_id)
        return Agent(*found) if found is not None else None

    def online(self) -> list[Agent]:
        return [Agent(i, n) for i, n in presence.online_agents()]


class CustomersFromDirectory:
    def __init__(self) -> None:
        self._known = KnownCustomers()

    def is_known(self, customer_id: uuid.UUID) -> bool:
        return self._known.is_known(customer_id)
