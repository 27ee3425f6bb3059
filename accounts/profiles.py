"""Agents' profiles: the name everyone is shown, never the login username.

An agent's login username is a credential's half, chosen for signing in
("ada.l", "agent7"); customers must never see it. What customers (and the
team) see is the agent's *public name*: the display name the agent chose
on their profile, else the full name Django has for them (the admin's
first and last name), else ``TEAM_NAME``. Every place a name of an agent
enters Parley goes through ``public_name``: the principal of a request or
a socket (so the names written into events from now on), the team list,
and the names the read side shows (readmodels.ports.AgentNames).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from accounts.errors import InvalidDisplayName
from accounts.models import AgentProfile

#: The name of an agent who has none: the team's.
TEAM_NAME = "Support"
MAX_DISPLAY_NAME = 64
#: Characters that are not part of a name: controls, formatting (invisible
#: direction marks, zero-width joiners), separators of lines and paragraphs,
#: surrogates, private use and unassigned code points.
_NOT_IN_A_NAME = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True)
class Profile:
    id: str
    username: str
    #: What the agent chose ("" when nothing: then ``name`` is the fallback).
    display_name: str
    #: What everyone is shown.
    name: str


def clean_display_name(value: str) -> str:
    """A display name as stored: trimmed, inner runs of spaces made one, at most
    MAX_DISPLAY_NAME characters of printable text ("" clears it)."""
    bad = sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) in _NOT_IN_A_NAME})
    if bad:
        raise InvalidDisplayName(f"the display name holds characters that are not printable text ({', '.join(bad[:5])})")
    cleaned = " ".join(value.split())
    if len(cleaned) > MAX_DISPLAY_NAME:
        raise InvalidDisplayName(f"the display name is longer than {MAX_DISPLAY_NAME} characters")
    return cleaned


def _name(display_name: str, first: str, last: str) -> str:
    return display_name or " ".join(f"{first} {last}".split()) or TEAM_NAME


def public_name(user: AbstractBaseUser) -> str:
    """The name everyone is shown for this agent (see the module docstring)."""
    try:
        chosen = user.agent_profile.display_name  # type: ignore[attr-defined]
    except AgentProfile.DoesNotExist:
        chosen = ""
    return _name(chosen, getattr(user, "first_name", ""), getattr(user, "last_name", ""))


def profile_of(user: AbstractBaseUser) -> Profile:
    try:
        chosen = user.agent_profile.display_name  # type: ignore[attr-defined]
    except AgentProfile.DoesNotExist:
        chosen = ""
    return Profile(str(user.pk), user.get_username(), chosen, public_name(user))


def set_display_name(user: AbstractBaseUser, value: str) -> Profile:
    """Change the agent's display name ("" clears it); raises InvalidDisplayName."""
    cleaned = clean_display_name(value)
    row, _ = AgentProfile.objects.update_or_create(user=user, defaults={"display_name": cleaned})  # type: ignore[misc]
    user.agent_profile = row  # type: ignore[attr-defined]  # the new row, not one cached before
    return profile_of(user)


def _users(ids: Collection[int] | None) -> QuerySet[Any, tuple[int, str, str, str | None]]:
    users = get_user_model().objects.all()
    if ids is not None:
        users = users.filter(pk__in=ids)
    return users.values_list("pk", "first_name", "last_name", "agent_profile__display_name")


def _by_id(rows: Iterable[Sequence[Any]]) -> dict[str, str]:
    return {str(pk): _name(chosen or "", first, last) for pk, first, last, chosen in rows}


def public_names(agent_ids: Collection[str]) -> dict[str, str]:
    """The public name of each of these agents that exists (an id of no user is left out)."""
    ids = {int(i) for i in agent_ids if i.isdigit() and int(i) <= 2**31 - 1}
    if not ids:
        return {}
    return _by_id(_users(ids))


def every_public_name_query() -> tuple[str, list[Any], Callable[[Iterable[Sequence[Any]]], dict[str, str]]]:
    """The public name of every user there is (agents, and former agents whose messages
    stay), as a statement, its parameters and what turns its rows into names by id: for
    a caller that sends it in one round trip with other reads (readmodels.asof)."""
    sql, params = _every_user_sql()
    return sql, list(params), _by_id


@functools.cache
def _every_user_sql() -> tuple[str, tuple[Any, ...]]:
    # The same text for every pipeline batch: compiled once per process, not per batch.
    return _users(None).query.sql_with_params()
