"""The names the API's objects show: customers' from the directory, agents' from their profiles.

``present`` (readmodels.present) takes one mapping of party id to name:
customers by their UUID, agents by their user id (digits), which never
collide. Every agent id asked for is answered: one the identity context
does not know (a user since deleted) is shown as ``FORMER_AGENT``, never
by the name its old events were written with, which may predate profiles
and be a login username.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from readmodels.models import DirectoryEntry
from readmodels.ports import agent_names

#: An agent id no user answers to any more.
FORMER_AGENT = "Support"


def customer_names(ids: Iterable[str | uuid.UUID]) -> dict[str, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = DirectoryEntry.objects.filter(customer_id__in=wanted).values_list("customer_id", "name")
    return {str(k): v for k, v in rows}


def agents_of(ids: Iterable[str | None], known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every one of these agent ids with the name it is shown by (``known``: a
    directory already read, e.g. once for a pipeline batch)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    found = known if known is not None else agent_names().names(wanted)
    return {i: found.get(i, FORMER_AGENT) for i in wanted}


def agent_ids_in(*rows: Mapping[str, Any] | None) -> set[str]:
    """The agents a row names (read-model rows or API objects): a message's
    sender, a conversation's assignee and its last message's sender, a note's author."""
    out: set[str] = set()
    for row in rows:
        if not row:
            continue
        if row.get("sender_kind") == "agent":
            out.add(row["sender_id"])
        if row.get("assignee_id"):
            out.add(row["assignee_id"])
        if row.get("author_id"):
            out.add(row["author_id"])
        last = row.get("last_message")
        if isinstance(last, Mapping) and last.get("sender", {}).get("kind") == "agent":
            out.add(last["sender"]["id"])
    return out


def names_for(rows: Iterable[Mapping[str, Any]], *, customers: Iterable[str | uuid.UUID] = (),
              known: Mapping[str, str] | None = None) -> dict[str, str]:
    """The names ``present`` needs for these rows: their customers' and their agents'."""
    rows = list(rows)
    customer_ids = {*customers, *(r["customer_id"] for r in rows if r.get("customer_id") is not None)}
    return {**customer_names(customer_ids), **agents_of(agent_ids_in(*rows), known)}
