"""Business hours: when the support team is open, and time counted in opening hours. Plain Python only.

The hours are written in the team's own wall-clock time
(``PARLEY_BUSINESS_HOURS``, e.g. ``Mon-Fri 09:00-17:00; Sat 10:00-14:00``,
in ``PARLEY_TIME_ZONE``), with whole days closed (``PARLEY_HOLIDAYS``).
Every question is answered in UTC instants: each local day's opening
windows are turned into instants with the time zone's rules for that very
day, so a day that changes to or from daylight-saving time is open for its
real length (09:00-17:00 on a day that springs forward is still eight hours
of wall clock, and the instants move by the offset).

Time is an input: nothing here reads the clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead an opening is looked for: hours with no window in it are "never open".
HORIZON_DAYS = 400

_WINDOW = re.compile(r"^([0-2]\d):([0-5]\d)-([0-2]\d):([0-5]\d)$")


class InvalidBusinessHours(ValueError):
    """A setting that does not say what it means; the message says which part and why."""


@dataclass(frozen=True)
class Window:
    """One opening on a weekday, in local wall-clock time: [start, end) (end 24:00 is midnight)."""

    weekday: int  # 0 Monday .. 6 Sunday
    start: dt.time
    end: dt.time | None  # None: until midnight (24:00)


@dataclass(frozen=True)
class BusinessHours:
    """The opening hours of the team, in one time zone, with holidays."""

    windows: tuple[Window, ...]
    zone: dt.tzinfo
    holidays: frozenset[dt.date] = frozenset()

    # -- reading the settings

    @classmethod
    def parse(cls, spec: str, time_zone: str = "UTC", holidays: str = "") -> BusinessHours | None:
        """The hours a setting describes; None for an empty one (always open)."""
        try:
            zone: dt.tzinfo = ZoneInfo(time_zone.strip() or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidBusinessHours(f"PARLEY_TIME_ZONE {time_zone!r} is not a time zone name (Europe/Berlin)") from None
        closed = frozenset(_parse_dates(holidays))
        if not spec.strip():
            return None
        windows: list[Window] = []
        for part in (p.strip() for p in spec.split(";")):
            if not part:
                continue
            days, _, times = part.partition(" ")
            if not times.strip():
                raise InvalidBusinessHours(f"{part!r}: write days then hours, as in 'Mon-Fri 09:00-17:00'")
            for weekday in _parse_days(days):
                for item in times.replace(" ", "").split(","):
                    windows.append(_parse_window(weekday, item))
        return cls(tuple(sorted(windows, key=lambda w: (w.weekday, w.start))), zone, closed)

    # -- questions

    def is_open(self, at: dt.datetime) -> bool:
        return any(start <= at < end for start, end in self.openings(at - dt.timedelta(days=1), at + dt.timedelta(days=1)))

    def next_opening(self, at: dt.datetime) -> dt.datetime | None:
        """``at`` itself when open, else the next instant the team opens (None: never within HORIZON_DAYS)."""
        for start, end in self.openings(at - dt.timedelta(days=1), at + dt.timedelta(days=HORIZON_DAYS)):
            if end > at:
                return max(start, at)
        return None

    def seconds_between(self, since: dt.datetime, until: dt.datetime) -> float:
        """Seconds of opening hours in [since, until)."""
        if until <= since:
            return 0.0
        total = 0.0
        for start, end in self.openings(since, until):
            lo, hi = max(start, since), min(end, until)
            if hi > lo:
                total += (hi - lo).total_seconds()
        return total

    def add(self, since: dt.datetime, duration: dt.timedelta) -> dt.datetime | None:
        """The instant ``duration`` of opening hours after ``since`` (None: never within HORIZON_DAYS)."""
        left = duration
        for start, end in self.openings(since, since + dt.timedelta(days=HORIZON_DAYS)):
            lo = max(start, since)
            if end <= lo:
                continue
            if lo + left <= end:
                return lo + left
            left -= end - lo
        return None

    def openings(self, since: dt.datetime, until: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """The opening windows as UTC instants, in order, of every local day from ``since``'s to ``until``'s."""
        day = since.astimezone(self.zone).date() - dt.timedelta(days=1)
        last = until.astimezone(self.zone).date() + dt.timedelta(days=1)
        while day <= last:
            if day not in self.holidays:
                for w in self.windows:
                    if w.weekday == day.weekday():
                        yield self._instant(day, w.start), self._end(day, w.end)
            day += dt.timedelta(days=1)

    def _instant(self, day: dt.date, at: dt.time) -> dt.datetime:
        # A wall-clock time a spring-forward skips is read with the offset before the change (fold=0).
        return dt.datetime.combine(day, at, tzinfo=self.zone).astimezone(dt.timezone.utc)

    def _end(self, day: dt.date, at: dt.time | None) -> dt.datetime:
        if at is None:
            return self._instant(day + dt.timedelta(days=1), dt.time(0, 0))
        return self._instant(day, at)


def _parse_days(text: str) -> list[int]:
    out: list[int] = []
    for item in text.lower().split(","):
        first, _, last = item.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise InvalidBusinessHours(f"{text!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, or ranges of them (Mon-Fri)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        out += list(range(a, b + 1)) if a <= b else [*range(a, 7), *range(0, b + 1)]
    return out


def _parse_window(weekday: int, text: str) -> Window:
    match = _WINDOW.match(text)
    if match is None:
        raise InvalidBusinessHours(f"{text!r}: hours are written 09:00-17:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or (h2 == 24 and m2):
        raise InvalidBusinessHours(f"{text!r}: a time is 00:00 to 24:00")
    start, end = dt.time(h1, m1), (None if h2 == 24 else dt.time(h2, m2))
    if end is not None and end <= start:
        raise InvalidBusinessHours(f"{text!r}: the end comes after the start (write a night as two days' windows)")
    return Window(weekday, start, end)


def _parse_dates(text: str) -> Iterable[dt.date]:
    for item in text.replace(",", " ").split():
        try:
            yield dt.date.fromisoformat(item)
        except ValueError:
            raise InvalidBusinessHours(f"PARLEY_HOLIDAYS: {item!r} is not a date (2026-12-25)") from None


def business_seconds(hours: BusinessHours | None, since: dt.datetime, until: dt.datetime) -> float:
    """Seconds between two instants counted in opening hours (all of them when there are no hours)."""
    if hours is None:
        return max(0.0, (until - since).total_seconds())
    return hours.seconds_between(since, until)
