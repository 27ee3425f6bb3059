"""What the read side needs from the rest of the system, as ports.

The names agents are shown by are the identity context's business
(accounts.profiles): a name an agent chooses on their profile, never their
login username. The read models keep, in each row, the name an event was
written with (history); the API's objects show every agent by their name
*now*, as they show customers by their current name in the directory. The
read side asks for those names through ``AgentNames``, an interface it
owns, which the composition root (project.apps) fills at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol


class AgentNames(Protocol):
    def names(self, agent_ids: Collection[str]) -> dict[str, str]:
        """The name each of these agents is shown by (an id of no agent is left out)."""

    def everyone_query(self) -> tuple[str, list[Any], Callable[[Iterable[Sequence[Any]]], dict[str, str]]]:
        """The name of every agent there is, by id, as a statement and what turns its
        rows into names: the pipeline reads it in the round trip of its batch's rows."""


_agents: AgentNames | None = None


def install(agents: AgentNames) -> None:
    global _agents
    _agents = agents


def agent_names() -> AgentNames:
    if _agents is None:
        raise RuntimeError("no agent names installed: project.apps installs them when Django starts")
    return _agents
