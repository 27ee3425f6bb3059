"""A database outage, told apart from a bug, and connections it left behind.

While PostgreSQL is down or restarting, every database call fails with a
connection error. Those are not bugs: the HTTP layer answers them with
``503 unavailable`` and ``Retry-After`` (api.unavailable), a socket closes
with 4000 so its client reconnects and resumes (realtime.consumers).

Only connection-level failures count (``is_outage``): libpq's own errors
(no SQLSTATE: refused, closed unexpectedly), a pool timeout, a closed
connection, SQLSTATE class 08 (connection exception), the server shutting
down, crashed, starting up or ending an idle session (57P01-57P03, 57P05),
and too many clients (53300). The rest of the driver's OperationalError
(a deadlock, a serialization failure, a statement or lock timeout) is the
server answering a statement: a working connection, and an error that a
503 or a close 4000 would hide. Django's wrapper of a driver error is
judged by the driver error it wraps; without one (SQLite, or raised by
Django itself) it counts as an outage, as before.

After the database comes back, connections opened before it went away are
dead, and nothing notices until one is used: the next request or socket
on it would fail. A dead idle connection shows itself without a round
trip: the server closed it, so its socket is readable (end of file, or the
server's "terminating connection" message), while a live idle connection
has nothing to read (``is_dead``). The connection pool checks each
connection it hands out (CONN_HEALTH_CHECKS, project.settings);
``drop_dead_connection`` does it for the long-lived threads that keep
theirs (workers.dbthreads), without the round trip.
"""

from __future__ import annotations

import select
from typing import Any

from django.db import InterfaceError, OperationalError, connection

#: Seconds a client is told to wait (``Retry-After``) before trying again.
RETRY_AFTER = 5

#: The SQLSTATEs, besides class 08, of a connection the server ended or would not open.
_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03", "57P05", "53300"})

try:  # PostgreSQL's driver, when installed: its own errors (a pool timeout is one) reach some callers unwrapped
    import psycopg

    _DRIVER: type[BaseException] | None = psycopg.Error
except ImportError:  # pragma: no cover - SQLite-only installs
    psycopg = None  # type: ignore[assignment]
    _DRIVER = None


def _connection_lost(exc: BaseException) -> bool:
    if _DRIVER is not None and isinstance(exc, _DRIVER):
        if isinstance(exc, psycopg.InterfaceError):
            return True
        if isinstance(exc, psycopg.OperationalError):
            state = exc.sqlstate
            return state is None or state.startswith("08") or state in _CONNECTION_STATES
        return False
    if isinstance(exc, (OperationalError, InterfaceError)):
        # Django's: the driver's error it wraps (its cause) decides; without one, it counts.
        return not (_DRIVER is not None and isinstance(exc.__cause__, _DRIVER))
    return False


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _connection_lost(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_dead(raw: Any) -> bool:
    """Whether an idle driver connection was closed by the server (or has no socket any more)."""
    try:
        if getattr(raw, "closed", False) or getattr(raw, "broken", False):
            return True
        fileno = raw.fileno()
    except Exception:
        return True
    try:
        ready, _, _ = select.select([fileno], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def drop_dead_connection() -> None:
    """Close this thread's Django connection if the server closed it while it was idle."""
    raw = connection.connection
    if raw is None or connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    if is_dead(raw):
        connection.close()
