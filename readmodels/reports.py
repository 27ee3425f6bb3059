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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from readmodels import names
from readmodels.folds import COUNTED, MEASURED
from readmodels.models import ReportCount, ReportFact

#: A report covers at most this many days.
MAX_DAYS = 366


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None for none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Measured:
    """The measured values of one kind in one group: how many, their sum, two percentiles, the ratings' spread."""

    count: int = 0
    total: float = 0.0
    p50: float | None = None
    p90: float | None = None
    scores: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    @classmethod
    def of(cls, values: list[float]) -> Measured:
        counts = tuple(sum(1 for v in values if v == score) for score in range(1, 6))
        return cls(len(values), sum(values), percentile(values, 50), percentile(values, 90), counts)  # type: ignore[arg-type]


@dataclass
class Figures:
    """What a report says of one group of facts (the team, an agent, a day)."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    measured: dict[str, Measured] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        rating = self.measured.get("rating", Measured())
        return {
            "conversations": self.counts["started"],
            "resolved": self.counts["resolved"],
            "messages": {"customer": self.counts["customer_message"], "agent": self.counts["agent_message"]},
            "first_response_seconds": _spread(self.measured.get("first_response", Measured())),
            "resolution_seconds": _spread(self.measured.get("resolution", Measured())),
            "rating": {
                "count": rating.count,
                "average": round(rating.total / rating.count, 2) if rating.count else None,
                "distribution": {str(score): rating.scores[score - 1] for score in range(1, 6)},
            },
            "sla_breaches": self.counts["sla_breach"],
        }


def _spread(m: Measured) -> dict[str, Any]:
    def rounded(v: float | None) -> float | None:
        return round(v, 1) if v is not None else None

    return {"count": m.count, "p50": rounded(m.p50), "p90": rounded(m.p90)}


def _where(first: dt.date, last: dt.date, agent: str | None) -> tuple[str, list[Any]]:
    where, params = "day >= %s AND day <= %s", [first.isoformat(), last.isoformat()]
    if agent is not None:
        where, params = where + " AND agent_id = %s", [*params, agent]
    return where, params


def _counts(group: str, where: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """(group's value, kind, count) of the tallied and the counted facts."""
    marks = ", ".join(["%s"] * len(COUNTED))
    with connection.cursor() as c:
        c.execute(f'SELECT {group}, kind, sum("count") FROM "{COUNTS}" WHERE {where} GROUP BY {group}, kind '
                  f'UNION ALL SELECT {group}, kind, count(*) FROM "{TABLE}" WHERE {where} AND kind IN ({marks}) '
                  f"GROUP BY {group}, kind", [*params, *params, *COUNTED])
        return [(g, k, int(n)) for g, k, n in c.fetchall()]


#: The group of a measured figure that is the whole range's (``_measured`` with ``overall``).
OVERALL = object()


def _measured(group: str, where: str, params: list[Any], *, overall: bool = False
              ) -> list[tuple[Any, str, Measured]]:
    """(group's value, kind, Measured) of the measured facts, grouped by ``group``, exact percentiles;
    with ``overall``, also each kind's over the whole range (group ``OVERALL``), from the same scan.

    PostgreSQL computes them (``percentile_disc`` is the nearest rank);
    elsewhere the values are read and ranked here.
    """
    marks = ", ".join(["%s"] * len(MEASURED))
    with connection.cursor() as c:
        if connection.vendor == "postgresql":
            scores = ", ".join(f"count(*) FILTER (WHERE value = {n})" for n in range(1, 6))
            sets = f"GROUPING SETS (({group}, kind), (kind))" if overall else f"{group}, kind"
            c.execute(f"SELECT {group}, kind, GROUPING({group}), count(*), sum(value), "
                      "percentile_disc(0.5) WITHIN GROUP (ORDER BY value), "
                      f"percentile_disc(0.9) WITHIN GROUP (ORDER BY value), {scores} "
                      f'FROM "{TABLE}" WHERE {where} AND kind IN ({marks}) GROUP BY {sets}',
                      [*params, *MEASURED])
            return [(OVERALL if whole else g, k, Measured(n, total, p50, p90, tuple(rest)))  # type: ignore[arg-type]
                    for g, k, whole, n, total, p50, p90, *rest in c.fetchall()]
        c.execute(f'SELECT {group}, kind, value FROM "{TABLE}" WHERE {where} AND kind IN ({marks})',
                  [*params, *MEASURED])
        values: dict[tuple[Any, str], list[float]] = defaultdict(list)
        for g, k, v in c.fetchall():
            values[(g, k)].append(v)
            if overall:
                values[(OVERALL, k)].append(v)
    return [(g, k, Measured.of(vs)) for (g, k), vs in values.items()]


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


TABLE = ReportFact._meta.db_table
COUNTS = ReportCount._meta.db_table


def summary(first: dt.date, last: dt.date, agent: str | None = None) -> dict[str, Any]:
    """The figures of the days ``first`` to ``last`` (inclusive), in all and by agent."""
    where, params = _where(first, last, agent)
    team, by_agent = Figures(), defaultdict[str, Figures](Figures)
    for agent_id, kind, n in _counts("agent_id", where, params):
        team.counts[kind] += n
        if agent_id:
            by_agent[agent_id].counts[kind] += n
    # The team's percentiles are over all of its values, not of the agents' percentiles.
    for agent_id, kind, m in _measured("agent_id", where, params, overall=True):
        if agent_id is OVERALL:
            team.measured[kind] = m
        elif agent_id:
            by_agent[agent_id].measured[kind] = m
    shown = names.agents_of(by_agent)
    return {
        "from": first.isoformat(), "to": last.isoformat(), "agent": agent,
        **team.as_json(),
        "by_agent": [{"agent": {"id": a, "name": shown.get(a, names.FORMER_AGENT)}, **by_agent[a].as_json()}
                     for a in sorted(by_agent, key=lambda a: (shown.get(a, ""), a))],
    }


def daily(first: dt.date, last: dt.date, agent: str | None = None) -> dict[str, Any]:
    """The figures of each day from ``first`` to ``last`` (every day, also those with nothing)."""
    where, params = _where(first, last, agent)
    days: dict[dt.date, Figures] = defaultdict(Figures)
    for day, kind, n in _counts("day", where, params):
        days[_day(day)].counts[kind] += n
    for day, kind, m in _measured("day", where, params):
        days[_day(day)].measured[kind] = m
    every = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return {"from": first.isoformat(), "to": last.isoformat(), "agent": agent,
            "days": [{"day": d.isoformat(), **days[d].as_json()} for d in every]}


def _path(*keys: str) -> Callable[[dict[str, Any]], Any]:
    """The figure at ``keys`` (nested), empty in a CSV when there is none (no percentile of nothing)."""
    def cell(figures: dict[str, Any]) -> Any:
        value: Any = figures
        for key in keys:
            value = value[key]
        return "" if value is None else value
    return cell


#: A report's CSV: each column's name and where its figure is in the JSON answer.
CSV_TABLE: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("conversations", _path("conversations")),
    ("resolved", _path("resolved")),
    ("customer_messages", _path("messages", "customer")),
    ("agent_messages", _path("messages", "agent")),
    ("first_response_p50", _path("first_response_seconds", "p50")),
    ("first_response_p90", _path("first_response_seconds", "p90")),
    ("resolution_p50", _path("resolution_seconds", "p50")),
    ("resolution_p90", _path("resolution_seconds", "p90")),
    ("ratings", _path("rating", "count")),
    ("rating_average", _path("rating", "average")),
    *((f"rating_{score}", _path("rating", "distribution", str(score))) for score in range(1, 6)),
    ("sla_breaches", _path("sla_breaches")),
]
CSV_COLUMNS = [name for name, _ in CSV_TABLE]


def csv_cells(figures: dict[str, Any]) -> list[Any]:
    """One row of a report's CSV: the figures in CSV_COLUMNS' order (empty for none)."""
    return [cell(figures) for _, cell in CSV_TABLE]
