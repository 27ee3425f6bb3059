"""The commands conversation timers fire (registered with workers.timers by project.apps).

Each fires with the timer's key as its cause: its events' ids derive from
it, so a timer fired again after a crash appends nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import uuid

from conversations import handlers
from conversations.commands import CheckFirstResponse, EndSnooze
from conversations.process_manager import FIRST_RESPONSE_TIMER, SNOOZE_TIMER
from workers import timers


def snooze_ends(due: timers.Due, now: dt.datetime) -> None:
    cmd = EndSnooze(uuid.UUID(due.payload["customer_id"]), uuid.UUID(due.payload["snooze_id"]))
    handlers.end_snooze(cmd, cause=f"timer:{due.key}", now=max(now, due.due_at))


def first_response_due(due: timers.Due, now: dt.datetime) -> None:
    cmd = CheckFirstResponse(uuid.UUID(due.payload["customer_id"]), uuid.UUID(due.payload["period_id"]))
    handlers.check_first_response(cmd, cause=f"timer:{due.key}", now=max(now, due.due_at))


def register() -> None:
    timers.register(SNOOZE_TIMER, snooze_ends)
    timers.register(FIRST_RESPONSE_TIMER, first_response_due)
