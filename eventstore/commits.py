"""How durable a consumer's commits must be."""

from __future__ import annotations

from django.db import connection


def relax_commits() -> None:
    """Let this thread's connection commit without waiting for the WAL to reach the disk.

    For work whose writes can be lost in a database crash without harm
    (they are derived from durable data and redone, or they are
    at-least-once bookkeeping): PostgreSQL's ``synchronous_commit = off``,
    set once per connection. A crash of the database, not of the process,
    can lose the last fraction of a second of such commits; nothing else.
    """
    if connection.vendor != "postgresql":
        return
    connection.ensure_connection()
    raw = connection.connection
    if getattr(connection, "_parley_relaxed", None) is not raw:
        with connection.cursor() as c:
            c.execute("SET synchronous_commit TO off")
        connection._parley_relaxed = raw  # type: ignore[attr-defined]
