"""The pipeline's position, lag and owner, for `readmodels_status` and /healthz."""

from __future__ import annotations

import datetime as dt
from typing import Any

from eventstore.events import Cursor
from eventstore.models import Checkpoint
from eventstore.store import EventStore
from readmodels.projections import PIPELINE


def pipeline_status() -> dict[str, Any]:
    """{"position", "lag", "owner", "lease_until", "running"}.

    ``lag`` is the number of readable events the pipeline has not processed;
    ``running`` is whether an instance holds its lease now. Lag with nothing
    running means read models, push and live delivery all stand still.
    """
    row = Checkpoint.objects.filter(name=PIPELINE).first()
    cursor = Cursor(row.tx, row.position) if row else Cursor.start()
    now = dt.datetime.now(dt.timezone.utc)
    running = bool(row and row.owner and row.lease_until and row.lease_until > now)
    return {
        "position": cursor.position,
        "lag": EventStore().count_after(cursor),
        "owner": row.owner if running and row else "",
        "lease_until": row.lease_until.isoformat() if running and row and row.lease_until else None,
        "running": running,
    }
