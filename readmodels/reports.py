"""Reports: the team's figures over a range of days, added up from the reports projection's facts.

Each figure is a plain aggregate of ``ReportFact`` rows (one statement for
the counts, one for the measured values), so a report equals a fold of the
log: the projection is rebuilt from it, and nothing here is sampled or
kept between calls. Percentiles are exact (nearest rank) over the measured
values of the range.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from readmodels import names
from readmodels.folds import MEASURED
from readmodels.models import ReportFact

#: A report covers at most this many days.
MAX_DAYS = 366


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None for none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Figures:
    """What a report says of one group of facts (the team, an agent, a day)."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def as_json(self) -> dict[str, Any]:
        ratings = self.values["rating"]
        return {
            "conversations": self.counts["started"],
            "resolved": self.counts["resolved"],
            "messages": {"customer": self.counts["customer_message"], "agent": self.counts["agent_message"]},
            "first_response_seconds": _spread(self.values["first_response"]),
            "resolution_seconds": _spread(self.values["resolution"]),
            "rating": {
                "count": len(ratings),
                "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
                "distribution": {str(score): sum(1 for v in ratings if v == score) for score in range(1, 6)},
            },
            "sla_breaches": self.counts["sla_breach"],
        }


def _spread(values: list[float]) -> dict[str, Any]:
    def rounded(v: float | None) -> float | None:
        return round(v, 1) if v is not None else None

    return {"count": len(values), "p50": rounded(percentile(values, 50)), "p90": rounded(percentile(values, 90))}


def _rows(first: dt.date, last: dt.date, agent: str | None) -> Iterable[tuple[Any, ...]]:
    """(day, kind, agent id, count, None) per group of counted facts, then (day, kind, agent id, None, value) per measured one."""
    table = ReportFact._meta.db_table
    where, params = "day >= %s AND day <= %s", [first.isoformat(), last.isoformat()]
    if agent is not None:
        where, params = where + " AND agent_id = %s", [*params, agent]
    marks = ", ".join(["%s"] * len(MEASURED))
    with connection.cursor() as c:
        c.execute(f'SELECT day, kind, agent_id, count(*) FROM "{table}" WHERE {where} AND kind NOT IN ({marks}) '
                  f"GROUP BY day, kind, agent_id", [*params, *MEASURED])
        counted = [(d, k, a, n, None) for d, k, a, n in c.fetchall()]
        c.execute(f'SELECT day, kind, agent_id, value FROM "{table}" WHERE {where} AND kind IN ({marks})',
                  [*params, *MEASURED])
        measured = [(d, k, a, None, v) for d, k, a, v in c.fetchall()]
    return counted + measured


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def summary(first: dt.date, last: dt.date, agent: str | None = None) -> dict[str, Any]:
    """The figures of the days ``first`` to ``last`` (inclusive), in all and by agent."""
    team, by_agent = Figures(), defaultdict[str, Figures](Figures)
    for _, kind, agent_id, n, value in _rows(first, last, agent):
        for figures in (team, by_agent[agent_id]) if agent_id else (team,):
            if value is None:
                figures.counts[kind] += n
            else:
                figures.values[kind].append(value)
    shown = names.agents_of(by_agent)
    return {
        "from": first.isoformat(), "to": last.isoformat(), "agent": agent,
        **team.as_json(),
        "by_agent": [{"agent": {"id": a, "name": shown.get(a, names.FORMER_AGENT)}, **by_agent[a].as_json()}
                     for a in sorted(by_agent, key=lambda a: (shown.get(a, ""), a))],
    }


def daily(first: dt.date, last: dt.date, agent: str | None = None) -> dict[str, Any]:
    """The figures of each day from ``first`` to ``last`` (every day, also those with nothing)."""
    days: dict[dt.date, Figures] = defaultdict(Figures)
    for day, kind, _, n, value in _rows(first, last, agent):
        if value is None:
            days[_day(day)].counts[kind] += n
        else:
            days[_day(day)].values[kind].append(value)
    count = (last - first).days + 1
    every = [first + dt.timedelta(days=i) for i in range(count)]
    return {"from": first.isoformat(), "to": last.isoformat(), "agent": agent,
            "days": [{"day": d.isoformat(), **days[d].as_json()} for d in every]}


CSV_COLUMNS = [
    "conversations", "resolved", "customer_messages", "agent_messages", "first_response_p50", "first_response_p90",
    "resolution_p50", "resolution_p90", "ratings", "rating_average", "sla_breaches",
]


def csv_cells(figures: dict[str, Any]) -> list[Any]:
    """One row of a report's CSV: the figures in CSV_COLUMNS' order (empty for none)."""
    def blank(v: Any) -> Any:
        return "" if v is None else v

    return [figures["conversations"], figures["resolved"], figures["messages"]["customer"],
            figures["messages"]["agent"], blank(figures["first_response_seconds"]["p50"]),
            blank(figures["first_response_seconds"]["p90"]), blank(figures["resolution_seconds"]["p50"]),
            blank(figures["resolution_seconds"]["p90"]), figures["rating"]["count"],
            blank(figures["rating"]["average"]), figures["sla_breaches"]]
