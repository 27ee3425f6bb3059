"""The webhook process manager: turns published events into intended webhook deliveries.

A consumer group of its own (``WEBHOOKS``, composed in project/bootstrap.py)
that follows the read models: it reads the log only up to the pipeline's
checkpoint and takes, for each event, the rows the read models left as of
it (readmodels.asof): the message, conversation or customer the event is
about, exactly as the API shows them at that point of the log (a message
sent and read in one batch is announced unread, then read). It folds
nothing itself.

For each event with a webhook type (outbound.types) it writes, for every
enabled endpoint that wants that type and existed when the event was
recorded, one outbox row holding the exact body to send. The rows are
written in the group's transaction with its checkpoint, and are unique per
(event id, endpoint): a batch redone after a crash cannot queue a second
delivery. It records intent; the delivery workers (outbound.worker) send.
A failure here stalls webhooks alone.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from django.conf import settings

from eventstore.reading import Batch
from outbound.models import WebhookDelivery, WebhookEndpoint
from outbound.outbox import wake_delivery
from outbound.types import BY_SOURCE
from readmodels import asof
from readmodels.asof import forgotten
from readmodels.present import rfc3339

#: The consumer group (and checkpoint) of the webhook process manager.
WEBHOOKS = "webhooks"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def encode(event_id: uuid.UUID, type_: str, recorded_at: dt.datetime, data: dict[str, Any]) -> str:
    """The body every attempt sends: ``{"id", "type", "timestamp", "data"}``."""
    body = {"id": str(event_id), "type": type_, "timestamp": rfc3339(recorded_at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class WebhookProcessManager:
    """Consumer group ``webhooks``: one outbox row per (event, endpoint)."""

    name = WEBHOOKS
    event_types = frozenset(BY_SOURCE)

    def __init__(self) -> None:
        self._endpoints: list[dict[str, Any]] = []

    def prepare(self, batch: Batch) -> None:
        # Most deployments have few endpoints and many have none: without one,
        # the batch reads nothing more.
        self._endpoints = [dict(ep) for ep in WebhookEndpoint.objects.filter(disabled_at__isnull=True)
                           .values("id", "events", "created_at")]
        if self._endpoints and batch.events:
            assert batch.unit is not None
            asof.for_events(batch.unit, batch.events)

    def handle(self, batch: Batch) -> int:
        unit = batch.unit
        for r in batch.events:
            if r.event_type == "CustomerErased":
                assert unit is not None
                # What was queued about them holds their data: it goes (after
                # the batch's writes); the announcement of the erasure stays.
                table = unit.table(WebhookDelivery)
                where, params = table.among("customer_id", [r.event.customer_id])  # type: ignore[attr-defined]
                unit.then(f'DELETE FROM "{table.name}" WHERE {where} AND event_type <> %s', [*params, "customer.erased"])
        endpoints = self._endpoints
        if not endpoints or not batch.events:
            return 0
        assert unit is not None
        rows_of = asof.in_unit(unit)
        now = _now()
        give_up_at = now + dt.timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS)
        queued = 0
        for r in batch.events:
            kind = BY_SOURCE[r.event_type]
            erased = r.event_type == "CustomerErased"
            wanted = [ep for ep in endpoints if kind.name in ep["events"] and ep["created_at"] <= r.recorded_at]
            if not wanted:
                continue
            rows: Any = {} if erased else rows_of(r)
            if rows is None and forgotten(r):
                continue  # erased meanwhile: nothing is announced about them
            if rows is None:
                raise LookupError(f"no read-model rows as of event {r.event_id} at position {r.position}")
            data = kind.build(r.event, rows)
            if data is None:
                continue  # nothing to announce (a contact change of a customer never registered)
            body = encode(r.event_id, kind.name, r.recorded_at, data)
            for ep in wanted:
                unit.add(WebhookDelivery, {
                    "event_id": r.event_id, "endpoint_id": ep["id"], "customer_id": r.event.customer_id,  # type: ignore[attr-defined]
                    "event_type": kind.name, "body": body, "tx": r.tx, "position": r.position,
                    "created_at": now, "due_at": now, "give_up_at": give_up_at,
                }, unless_exists=("event_id", "endpoint_id"))
                queued += 1
        return queued

    def reset(self) -> None:
        # Deliveries are intent already acted on: a replay must not send history again.
        return None

    async def after_commit(self, effects: Any) -> None:
        if effects:
            wake_delivery()
