"""Which agents are online: one row per open dashboard socket.

The websocket consumer records a socket when it opens and removes it when
it closes; an agent is online while one of their sockets is. The rows live
in the database, so every process (the web processes that hold the sockets,
the worker that auto-assigns) sees the same answer.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model

from accounts.models import AgentSocket
from accounts.principals import agent_display_name


def agent_connected(socket_id: str, agent_id: str) -> None:
    AgentSocket.objects.update_or_create(
        socket_id=socket_id, defaults={"agent_id": agent_id, "connected_at": dt.datetime.now(dt.timezone.utc)}
    )


def agent_disconnected(socket_id: str) -> None:
    AgentSocket.objects.filter(socket_id=socket_id).delete()


def online_agent_ids() -> list[str]:
    return sorted(set(AgentSocket.objects.values_list("agent_id", flat=True)))


def active_agent(agent_id: str) -> tuple[str, str] | None:
    """(user id, display name) of the active agent with this id (None: none)."""
    if not agent_id.isdigit() or int(agent_id) > 2**31 - 1:  # beyond any user id (and the column)
        return None
    user = get_user_model().objects.select_related("agent_profile").filter(
        pk=int(agent_id), is_active=True, is_staff=True).first()
    return (str(user.pk), agent_display_name(user)) if user is not None else None


def online_agents() -> list[tuple[str, str]]:
    """(user id, display name) of every active agent with an open socket, by id."""
    ids = [int(i) for i in online_agent_ids() if i.isdigit() and int(i) <= 2**31 - 1]
    users = get_user_model().objects.select_related("agent_profile").filter(
        pk__in=ids, is_active=True, is_staff=True).order_by("pk")
    return [(str(u.pk), agent_display_name(u)) for u in users]


def active_agents() -> list[tuple[str, str, bool, str]]:
    """(user id, display name, online, username) of every active agent, by display name then id."""
    online = set(online_agent_ids())
    users = get_user_model().objects.select_related("agent_profile").filter(is_active=True, is_staff=True).order_by("pk")
    found = [(str(u.pk), agent_display_name(u), str(u.pk) in online, u.get_username()) for u in users]
    return sorted(found, key=lambda a: (a[1].casefold(), int(a[0])))
