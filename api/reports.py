"""Reports for agents: the team's figures over a range of days, as JSON or CSV (readmodels.reports)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.principals import Principal
from api.errors import ApiError
from api.http import api, doc
from api.schemas import query, ref
from readmodels import reports, selectors

DATE = {"type": "string", "format": "date"}
FROM = query("from", DATE, "The first day (a date in the team's time zone, PARLEY_TIME_ZONE); default: 29 days "
             "before `to`.", [(400, "invalid_parameter"), (400, "invalid_range")])
TO = query("to", DATE, "The last day, included; default: today.", [(400, "invalid_parameter"), (400, "invalid_range")])
AGENT = query("agent", {"type": "string", "pattern": "^[0-9]{1,20}$"},
              "Only the facts of this agent (what they wrote or resolved; the conversations they held).",
              [(400, "unknown_agent")])
FORMAT = query("format", ref("ReportFormat"), "`csv`: the same figures as a CSV file.",
               [(400, "invalid_parameter")])
PARAMS = [FROM, TO, AGENT, FORMAT]
ERRORS = [(400, "invalid_parameter"), (400, "invalid_range"), (400, "unknown_agent")]


def _date(request: HttpRequest, name: str) -> dt.date | None:
    raw = request.GET.get(name) or None
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name!r} must be a date (2026-11-30)") from None


def _range(request: HttpRequest) -> tuple[dt.date, dt.date]:
    last = _date(request, "to") or dt.datetime.now(reports_zone()).date()
    first = _date(request, "from") or last - dt.timedelta(days=29)
    if first > last:
        raise ApiError(400, "invalid_range", "'from' must not be after 'to'")
    if (last - first).days + 1 > reports.MAX_DAYS:
        raise ApiError(400, "invalid_range", f"a report covers at most {reports.MAX_DAYS} days")
    return first, last


def reports_zone() -> dt.tzinfo:
    from readmodels.projections import report_clock

    return report_clock().zone


def _agent(request: HttpRequest) -> str | None:
    raw = request.GET.get("agent") or None
    if raw is None:
        return None
    if selectors.agent_name(raw) is None:
        raise ApiError(400, "unknown_agent", f"no agent {raw!r}")
    return raw


def _format(request: HttpRequest) -> str:
    value = request.GET.get("format") or "json"
    if value not in ("json", "csv"):
        raise ApiError(400, "invalid_parameter", "'format' must be json or csv")
    return value


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        # A cell a spreadsheet would read as a formula is written as text.
        writer.writerow([f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@api(["GET"], "agent")
@doc("GET", "The team's figures over a range of days", operation_id="getReportSummary", params=PARAMS, responses={200: "ReportSummary"}, errors=ERRORS,
     description="Conversations started and resolved, messages by side, first-response and resolution times "
     "(p50/p90, in business seconds), ratings (count, average, distribution) and first responses past their target, "
     "for the whole team and `by_agent`. Days are dates in `PARLEY_TIME_ZONE`; a range covers 1 to 366 days "
     "(`from` after `to`, or longer, 400 `invalid_range`). The figures are added up from the log's facts: a "
     "rebuild gives the same answer. `?format=csv`: the team's row then one per agent.")
def summary(request: HttpRequest, principal: Principal) -> HttpResponse:
    fmt, (first, last), agent = _format(request), _range(request), _agent(request)
    body = reports.summary(first, last, agent)
    if fmt == "csv":
        rows = [["", "All", *reports.csv_cells(body)]]
        rows += [[a["agent"]["id"], a["agent"]["name"], *reports.csv_cells(a)] for a in body["by_agent"]]
        return _csv(f"parley-summary-{first}-{last}", ["agent_id", "agent_name", *reports.CSV_COLUMNS], rows)
    return JsonResponse(body)


@api(["GET"], "agent")
@doc("GET", "The team's figures day by day", operation_id="getReportDaily", params=PARAMS, responses={200: "ReportDaily"}, errors=ERRORS,
     description="One row per day from `from` to `to` (days with nothing included), with the figures of the "
     "summary. `?format=csv`: one line per day.")
def daily(request: HttpRequest, principal: Principal) -> HttpResponse:
    fmt, (first, last), agent = _format(request), _range(request), _agent(request)
    body = reports.daily(first, last, agent)
    if fmt == "csv":
        rows = [[d["day"], *reports.csv_cells(d)] for d in body["days"]]
        return _csv(f"parley-daily-{first}-{last}", ["day", *reports.CSV_COLUMNS], rows)
    return JsonResponse(body)
