"""How many messages (and uploads) one identity may send per minute.

Every send costs one unit of the sender's budget, whichever way it arrives
(HTTP or websocket share it: the key is the identity, not the connection).
A person typing never comes near it; a script flooding a conversation is
refused with ``429 rate_limited`` (an error frame on a socket) and told
when to try again. Agents answer many conversations, and paste canned
replies, so theirs is larger. Inbound webhooks are not counted: they come
from a provider that throttles its own senders, and are deduplicated.

A repeat of a message already sent (an idempotent retry) costs a unit too:
counting before the command runs is what keeps a flood of concurrent
sends from slipping past the check.

Edits have a budget of their own, shared by HTTP and websocket the same
way (``charge_edit``): each edit is an event, a frame to every viewer, a
search rewrite and a webhook, so a loop of edits to one message is a flood
too. Searches have one (``charge_search``): a query of many words is costly
for the index, and nothing else stops a loop of them.

Uploads have a budget of their own (``charge_upload``): a file is stored
(and kept for a day) before any message names it, so without one a script
could fill the disk at 10 MiB a request.
"""

from __future__ import annotations

from django.conf import settings

from accounts import ratelimit
from accounts.errors import RateLimited

WINDOW = 60


def budget(kind: str) -> int:
    """Sends per minute for a ``customer`` or an ``agent``."""
    return int(settings.PARLEY_AGENT_SENDS_PER_MINUTE if kind == "agent" else settings.PARLEY_CUSTOMER_SENDS_PER_MINUTE)


def upload_budget(kind: str) -> int:
    """Uploads per minute for a ``customer`` or an ``agent``."""
    return int(settings.PARLEY_AGENT_UPLOADS_PER_MINUTE if kind == "agent"
               else settings.PARLEY_CUSTOMER_UPLOADS_PER_MINUTE)


def edit_budget(kind: str) -> int:
    """Edits per minute for a ``customer`` or an ``agent``."""
    return int(settings.PARLEY_AGENT_EDITS_PER_MINUTE if kind == "agent" else settings.PARLEY_CUSTOMER_EDITS_PER_MINUTE)


def search_budget(kind: str) -> int:
    """Searches per minute for a ``customer`` or an ``agent``."""
    return int(settings.PARLEY_AGENT_SEARCHES_PER_MINUTE if kind == "agent"
               else settings.PARLEY_CUSTOMER_SEARCHES_PER_MINUTE)


def charge_edit(kind: str, identity: str) -> None:
    """Count one edit of ``identity`` (HTTP and websocket together); raise RateLimited past its budget."""
    _charge("edit", "edits", edit_budget(kind), kind, identity)


def charge_search(kind: str, identity: str) -> None:
    """Count one search of ``identity``; raise RateLimited past its budget."""
    _charge("search", "searches", search_budget(kind), kind, identity)


def charge_send(kind: str, identity: str) -> None:
    """Count one send of ``identity``; raise RateLimited past its budget."""
    _charge("send", "messages", budget(kind), kind, identity)


def charge_upload(kind: str, identity: str) -> None:
    """Count one upload of ``identity``; raise RateLimited past its budget."""
    _charge("upload", "uploads", upload_budget(kind), kind, identity)


def _charge(scope: str, what: str, limit: int, kind: str, identity: str) -> None:
    verdict = ratelimit.hit(scope, f"{kind}:{identity}", limit=limit, window=WINDOW)
    if not verdict.allowed:
        raise RateLimited(
            f"more than {limit} {what} a minute; try again in {verdict.retry_after} s",
            retry_after=verdict.retry_after,
        )
