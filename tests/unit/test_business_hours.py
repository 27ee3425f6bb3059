"""Business hours as UTC instants: parsing, opening windows across daylight-saving
changes and holidays, the next opening, and time counted in opening hours
(conversations.hours). A fixed clock: every instant is written out."""

from __future__ import annotations

import datetime as dt

import pytest

from conversations.away import away_status, when
from conversations.hours import BusinessHours, InvalidBusinessHours, business_seconds

UTC = dt.timezone.utc
WEEK = "Mon-Fri 09:00-17:00; Sat 10:00-14:00"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin(spec: str = WEEK, holidays: str = "") -> BusinessHours:
    hours = BusinessHours.parse(spec, "Europe/Berlin", holidays)
    assert hours is not None
    return hours


def test_an_empty_setting_means_always_open_and_time_counts_in_full():
    assert BusinessHours.parse("", "Europe/Berlin") is None
    assert business_seconds(None, utc(2026, 1, 1), utc(2026, 1, 1, 1)) == 3600
    assert away_status(None, utc(2026, 1, 1)) is None


@pytest.mark.parametrize(("spec", "zone", "holidays"), [
    ("Mon-Fri", "UTC", ""),  # no hours
    ("Funday 09:00-17:00", "UTC", ""),
    ("Mon 17:00-09:00", "UTC", ""),  # a night is two days' windows
    ("Mon 9-17", "UTC", ""),
    ("Mon 09:00-24:30", "UTC", ""),
    ("Mon 09:00-17:00", "Mars/Olympus", ""),
    ("Mon 09:00-17:00", "UTC", "Christmas"),
])
def test_a_setting_that_does_not_say_what_it_means_is_refused(spec, zone, holidays):
    with pytest.raises(InvalidBusinessHours):
        BusinessHours.parse(spec, zone, holidays)


def test_open_and_closed_in_the_teams_own_time_zone():
    hours = berlin()
    # Wednesday 14 January 2026 (CET, UTC+1): open 08:00-16:00 UTC.
    assert not hours.is_open(utc(2026, 1, 14, 7, 59))
    assert hours.is_open(utc(2026, 1, 14, 8, 0))
    assert hours.is_open(utc(2026, 1, 14, 15, 59))
    assert not hours.is_open(utc(2026, 1, 14, 16, 0))
    # Saturday 10:00-14:00 local; Sunday closed.
    assert hours.is_open(utc(2026, 1, 17, 9, 30)) and not hours.is_open(utc(2026, 1, 18, 12))


def test_the_next_opening_skips_the_night_the_weekend_and_holidays():
    hours = berlin(holidays="2026-12-24, 2026-12-25")
    assert hours.next_opening(utc(2026, 1, 14, 10)) == utc(2026, 1, 14, 10)  # open: now
    assert hours.next_opening(utc(2026, 1, 14, 18)) == utc(2026, 1, 15, 8)
    assert hours.next_opening(utc(2026, 1, 17, 14)) == utc(2026, 1, 19, 8)  # Saturday afternoon -> Monday
    # Wednesday 23 December after hours: the 24th and 25th are holidays, the 26th a Saturday.
    assert hours.next_opening(utc(2026, 12, 23, 17)) == utc(2026, 12, 26, 9)


def test_daylight_saving_moves_the_instants_not_the_wall_clock():
    hours = berlin()
    # Friday 27 March 2026 is CET (UTC+1); Monday 30 March is CEST (UTC+2), after the spring-forward of the 29th.
    assert hours.next_opening(utc(2026, 3, 27, 17)) == utc(2026, 3, 28, 9)  # Saturday 10:00 CET
    assert hours.next_opening(utc(2026, 3, 28, 14)) == utc(2026, 3, 30, 7)  # Monday 09:00 CEST
    # Back to CET on Sunday 25 October: Monday opens at 08:00 UTC again.
    assert hours.next_opening(utc(2026, 10, 24, 13)) == utc(2026, 10, 26, 8)
    # A whole week across the change still holds 5 x 8 + 4 hours.
    assert hours.seconds_between(utc(2026, 3, 23), utc(2026, 3, 30)) == (5 * 8 + 4) * 3600
    assert hours.seconds_between(utc(2026, 10, 19), utc(2026, 10, 26)) == (5 * 8 + 4) * 3600


def test_a_window_across_the_hour_a_clock_skips_or_repeats_is_its_real_length():
    # Sunday 01:00-04:00 local: on the spring-forward night 02:00-03:00 does not exist (2 real hours),
    # on the fall-back night 02:00-03:00 happens twice (4 real hours).
    hours = berlin("Sun 01:00-04:00")
    assert hours.seconds_between(utc(2026, 3, 28), utc(2026, 3, 30)) == 2 * 3600
    assert hours.seconds_between(utc(2026, 10, 24), utc(2026, 10, 26)) == 4 * 3600


def test_time_counts_in_opening_hours_only_and_a_due_time_lands_in_them():
    hours = berlin()
    friday_evening, monday_morning = utc(2026, 1, 16, 15, 30), utc(2026, 1, 19, 8, 30)
    # 30 minutes on Friday, 4 hours on Saturday, 30 minutes on Monday.
    assert hours.seconds_between(friday_evening, monday_morning) == 5 * 3600
    assert hours.add(friday_evening, dt.timedelta(hours=1)) == utc(2026, 1, 17, 9, 30)  # Saturday 10:30 CET
    assert hours.add(friday_evening, dt.timedelta(hours=5)) == monday_morning
    assert hours.add(utc(2026, 1, 18, 12), dt.timedelta(0)) == utc(2026, 1, 19, 8)  # written on Sunday


def test_hours_whose_every_opening_falls_on_a_holiday_are_never_open():
    # Open Mondays 09:00-10:00, and every Monday for longer than the opening is looked for is a holiday.
    mondays = [dt.date(2026, 1, 19) + dt.timedelta(weeks=w) for w in range(60)]
    hours = berlin("Mon 09:00-10:00", holidays=" ".join(map(str, mondays)))
    assert not hours.is_open(utc(2026, 1, 19, 8, 30))
    assert hours.next_opening(utc(2026, 1, 13)) is None and hours.add(utc(2026, 1, 13), dt.timedelta(1)) is None
    assert hours.seconds_between(utc(2026, 1, 13), utc(2026, 3, 1)) == 0
    # One of those Mondays a working day again: the team opens then.
    some = berlin("Mon 09:00-10:00", holidays=" ".join(map(str, mondays[:3] + mondays[4:])))
    assert some.next_opening(utc(2026, 1, 13)) == utc(2026, 2, 9, 8)  # 09:00 CET
    # Hours with no window at all are never open either.
    closed = BusinessHours(windows=(), zone=hours.zone)
    assert closed.next_opening(utc(2026, 1, 13)) is None and closed.add(utc(2026, 1, 13), dt.timedelta(1)) is None


def test_the_away_status_says_when_the_team_opens_in_its_own_words():
    hours = berlin()
    assert away_status(hours, utc(2026, 1, 14, 10)) == {
        "open": True, "next_opening": "2026-01-14T10:00:00Z", "next_opening_text": None}
    closed = away_status(hours, utc(2026, 1, 14, 18))
    assert closed == {"open": False, "next_opening": "2026-01-15T08:00:00Z", "next_opening_text": "tomorrow at 09:00 CET"}
    assert when(utc(2026, 1, 14, 8), utc(2026, 1, 14, 6), hours.zone) == "today at 09:00 CET"
    assert when(utc(2026, 3, 30, 7), utc(2026, 3, 28, 14), hours.zone) == "Monday 30 March at 09:00 CEST"
