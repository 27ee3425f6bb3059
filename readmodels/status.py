"""Consumers' positions and lag, for `readmodels_status` and /healthz."""

from __future__ import annotations

from typing import Any

from eventstore.events import Cursor
from eventstore.models import Checkpoint
from eventstore.store import EventStore


def consumer_status(names: list[str]) -> dict[str, dict[str, Any]]:
    """{name: {"position", "lag"}}: lag is the number of readable events not yet processed."""
    store = EventStore()
    rows = {c.name: c for c in Checkpoint.objects.filter(name__in=names)}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        row = rows.get(name)
        cursor = Cursor(row.tx, row.position) if row else Cursor.start()
        out[name] = {
            "position": cursor.position,
            "lag": store.count_after(cursor),
            "owner": row.owner if row else "",
            "lease_until": row.lease_until.isoformat() if row and row.lease_until else None,
        }
    return out
