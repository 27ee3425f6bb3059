"""Outside business hours: the configured hours, and the one automatic reply per waiting period.

A customer's first message of a waiting period, written while the team is
closed, gets one reply from Parley itself (a chat message of kind
``system``, ``PARLEY_AWAY_MESSAGE``) saying when the team opens again. The
workflow process manager asks for it when it records the message; the
reply's message id is derived from the waiting period, and chat writes a
message id once, so a batch redone after a crash, or two workers handling
the same message at once, still send exactly one.

The reply is an event of the log like any message: a rebuild of the read
models replays it, and never decides it again.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid

from django.conf import settings

from conversations.hours import BusinessHours
from conversations.ports import system_messages

#: Namespace of the away replies' message ids (one per waiting period).
AWAY_NAMESPACE = uuid.UUID("0b7c2a7e-5d8e-4f55-a1c9-7e3f0d2b6a14")


@functools.lru_cache(maxsize=8)
def _parsed(spec: str, zone: str, holidays: str) -> BusinessHours | None:
    return BusinessHours.parse(spec, zone, holidays)


def business_hours() -> BusinessHours | None:
    """The configured hours (None: always open), read from the settings."""
    return _parsed(getattr(settings, "PARLEY_BUSINESS_HOURS", ""), getattr(settings, "PARLEY_TIME_ZONE", "UTC"),
                   getattr(settings, "PARLEY_HOLIDAYS", ""))


def away_message_id(period_id: uuid.UUID) -> uuid.UUID:
    """The id of the away reply of the waiting period started by message ``period_id``."""
    return uuid.uuid5(AWAY_NAMESPACE, str(period_id))


def when(opening: dt.datetime, now: dt.datetime, zone: dt.tzinfo) -> str:
    """An opening as a person reads it, in the team's time zone: "today at 09:00 CET",
    "tomorrow at 09:00 CET", "Monday 14 December at 09:00 CET"."""
    local, today = opening.astimezone(zone), now.astimezone(zone).date()
    clock = f"{local:%H:%M} {local.tzname() or ''}".strip()
    if local.date() == today:
        return f"today at {clock}"
    if local.date() == today + dt.timedelta(days=1):
        return f"tomorrow at {clock}"
    return f"{local:%A} {local.day} {local:%B} at {clock}"


def away_status(hours: BusinessHours | None, now: dt.datetime) -> dict[str, object] | None:
    """``{"open", "next_opening", "next_opening_text"}`` for the customer's surfaces (None: no hours configured)."""
    if hours is None:
        return None
    opening = hours.next_opening(now)
    is_open = opening == now
    return {
        "open": is_open,
        "next_opening": opening.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if opening else None,
        "next_opening_text": when(opening, now, hours.zone) if opening and not is_open else None,
    }


def away_text(hours: BusinessHours, sent_at: dt.datetime) -> str:
    opening = hours.next_opening(sent_at)
    told = when(opening, sent_at, hours.zone) if opening is not None else "the next working day"
    return str(getattr(settings, "PARLEY_AWAY_MESSAGE", "")).replace("{next_opening}", told)


def reply_if_away(customer_id: uuid.UUID, period_id: uuid.UUID, sent_at: dt.datetime,
                  hours: BusinessHours | None = None) -> bool:
    """Send the away reply of this waiting period if the team was closed at ``sent_at``;
    True if this call wrote it (at most one call ever does, for one period)."""
    hours = hours if hours is not None else business_hours()
    if hours is None or hours.is_open(sent_at):
        return False
    text = away_text(hours, sent_at)
    if not text:
        return False
    return system_messages().send(customer_id, away_message_id(period_id), text)
