"""What the conversations context needs from the rest of the system, as ports.

Whether an agent exists, what they are called and who is online are the
identity context's business (accounts); conversations asks through
``AgentDirectory``, an interface it owns, which the composition root
(project.apps) fills at start-up. Whether a customer exists it asks
through ``CustomerDirectory`` likewise.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from conversations.commands import Agent


class AgentDirectory(Protocol):
    def agent(self, agent_id: str) -> Agent | None:
        """The active agent with this user id (None: no such agent)."""

    def online(self) -> list[Agent]:
        """The agents with a live dashboard connection now, in a stable order."""


class CustomerDirectory(Protocol):
    def is_known(self, customer_id: uuid.UUID) -> bool:
        """Whether this customer exists."""


class SystemMessages(Protocol):
    def send(self, customer_id: uuid.UUID, message_id: uuid.UUID, body: str) -> bool:
        """Send ``body`` to the customer as a message of kind ``system`` named ``message_id``;
        True if this call wrote it, False if a message of that id was there already."""


_agents: AgentDirectory | None = None
_customers: CustomerDirectory | None = None
_system: SystemMessages | None = None


def install(agents: AgentDirectory, customers: CustomerDirectory, system: SystemMessages | None = None) -> None:
    global _agents, _customers, _system
    _agents, _customers = agents, customers
    if system is not None:
        _system = system


def system_messages() -> SystemMessages:
    if _system is None:
        raise RuntimeError("no system messages installed: project.apps installs them when Django starts")
    return _system


def agent_directory() -> AgentDirectory:
    if _agents is None:
        raise RuntimeError("no agent directory installed: project.apps installs one when Django starts")
    return _agents


def customer_directory() -> CustomerDirectory:
    if _customers is None:
        raise RuntimeError("no customer directory installed: project.apps installs one when Django starts")
    return _customers
