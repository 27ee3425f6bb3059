"""Reports through the API (docs/reports.md): the figures of a range of days, by
agent and day by day, as JSON and CSV; clear refusals; a rebuild answers the same."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any

import pytest
from django.core.management import call_command

from chat.events import MessageSent
from conversations.events import FirstResponseSlaBreached
from eventstore.events import Cursor
from eventstore.store import EventStore
from tests.integration.test_agent_tools import agent_says, customer_says, settle
from tests.support.reports_seed import write_conversation
from workers import timers

pytestmark = pytest.mark.django_db(transaction=True)


def resolve(agent: Any, customer_id: str) -> None:
    assert agent.post(f"/api/v1/conversations/{customer_id}/status", {"status": "resolved"}).status_code == 200


@pytest.fixture
def seeded(make_customer: Any, make_agent: Any) -> dict[str, Any]:
    grace, linus = make_agent("grace"), make_agent("linus")
    ada, bob = make_customer("Ada"), make_customer("Bob", "bob@example.com")
    customer_says(ada.id, "Where is my parcel?")
    customer_says(ada.id, "It is late")
    customer_says(bob.id, "Refund please")
    settle()
    agent_says(grace, ada.id, "Checking")
    agent_says(linus, bob.id, "Done")
    settle()
    resolve(grace, ada.id)
    resolve(linus, bob.id)
    assert ada.post("/api/v1/rating", {"score": 4}).status_code == 201
    assert bob.post("/api/v1/rating", {"score": 2}).status_code == 201
    assert bob.post("/api/v1/rating", {"score": 5, "comment": "fixed"}).status_code == 201  # replaces the 2
    settle()
    return {"grace": grace, "linus": linus, "today": dt.datetime.now(dt.timezone.utc).date().isoformat()}


def test_the_summary_adds_up_the_days_facts_for_the_team_and_each_agent(seeded):
    grace, today = seeded["grace"], seeded["today"]
    r = grace.get("/api/v1/reports/summary", **{"from": today, "to": today})
    assert r.status_code == 200, r.content
    s = r.json()
    assert (s["conversations"], s["resolved"], s["messages"], s["sla_breaches"]) == (
        2, 2, {"customer": 3, "agent": 2}, 0)
    assert s["first_response_seconds"]["count"] == 2 and s["first_response_seconds"]["p50"] >= 0
    assert s["resolution_seconds"]["count"] == 2
    assert s["rating"] == {"count": 2, "average": 4.5, "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}}
    by = {a["agent"]["name"]: a for a in s["by_agent"]}
    assert set(by) == {"Grace", "Linus"}
    assert (by["Grace"]["resolved"], by["Grace"]["messages"]["agent"], by["Grace"]["rating"]["average"]) == (1, 1, 4.0)
    assert (by["Linus"]["resolved"], by["Linus"]["rating"]["average"]) == (1, 5.0)

    only = grace.get("/api/v1/reports/summary", **{"from": today, "to": today, "agent": grace.id}).json()
    assert (only["agent"], only["resolved"], only["rating"]["count"]) == (grace.id, 1, 1)


def test_daily_has_every_day_of_the_range_and_csv_says_the_same(seeded):
    grace, today = seeded["grace"], dt.datetime.now(dt.timezone.utc).date()
    days = grace.get("/api/v1/reports/daily", to=today.isoformat()).json()["days"]
    assert len(days) == 30 and days[-1]["day"] == today.isoformat() and days[0]["conversations"] == 0
    assert (days[-1]["conversations"], days[-1]["rating"]["count"]) == (2, 2)

    r = grace.get("/api/v1/reports/daily", to=today.isoformat(), format="csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert len(rows) == 30 and rows[-1]["day"] == today.isoformat()
    assert (rows[-1]["conversations"], rows[-1]["ratings"], rows[-1]["rating_average"]) == ("2", "2", "4.5")
    # The ratings' spread, as in the JSON: Ada's 4 and Bob's 5 (that replaced his 2).
    assert [rows[-1][f"rating_{score}"] for score in range(1, 6)] == ["0", "0", "0", "1", "1"]
    assert [rows[0][f"rating_{score}"] for score in range(1, 6)] == ["0"] * 5

    summary = list(csv.reader(io.StringIO(grace.get("/api/v1/reports/summary", format="csv").content.decode())))
    assert summary[0][:3] == ["agent_id", "agent_name", "conversations"]
    assert [row[1] for row in summary[1:]] == ["All", "Grace", "Linus"]
    spread = summary[0].index("rating_1")
    assert [row[spread:spread + 5] for row in summary[1:]] == [
        ["0", "0", "0", "1", "1"], ["0", "0", "0", "1", "0"], ["0", "0", "0", "0", "1"]]


def test_a_rebuild_of_the_reports_gives_the_same_answers(seeded):
    grace = seeded["grace"]
    before = grace.get("/api/v1/reports/summary").json()
    call_command("rebuild_readmodels", verbosity=0)
    assert grace.get("/api/v1/reports/summary").json() == before


#: Two days of conversations written at fixed times (days in UTC).
MONDAY, TUESDAY = dt.date(2026, 3, 2), dt.date(2026, 3, 3)
TWO_DAYS = {"from": MONDAY.isoformat(), "to": TUESDAY.isoformat()}


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=dt.timezone.utc)


@pytest.fixture
def measured(make_agent: Any, settings: Any, project: Any) -> dict[str, Any]:
    """Fifteen conversations, each answered after a wait of ``w`` seconds and resolved ``2w`` after it started:
    Grace's eleven on Monday (60, 120, ... 660), Linus's one on Monday (45) and three on Tuesday (900, 1500, 2400)."""
    settings.PARLEY_TIME_ZONE = "UTC"
    settings.PARLEY_BUSINESS_HOURS = ""  # a wait counts in full
    grace, linus = make_agent("grace"), make_agent("linus")
    waits = [(grace, MONDAY, w) for w in range(60, 661, 60)] + [(linus, MONDAY, 45)]
    waits += [(linus, TUESDAY, w) for w in (900, 1500, 2400)]
    store = EventStore()
    for i, (agent, day, wait) in enumerate(waits):
        asked = at(day, 9, i)
        write_conversation(store, agent.id, f"Customer {i}", asked, asked + dt.timedelta(seconds=wait),
                           asked + dt.timedelta(seconds=2 * wait))
    project()
    return {"grace": grace, "linus": linus}


def times(figures: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return figures["first_response_seconds"], figures["resolution_seconds"]


def spread(count: int, p50: float, p90: float) -> dict[str, Any]:
    return {"count": count, "p50": p50, "p90": p90}


def test_percentiles_are_the_nearest_rank_of_the_ranges_values_for_the_team_each_agent_and_each_day(measured):
    grace, linus = measured["grace"], measured["linus"]
    s = grace.get("/api/v1/reports/summary", **TWO_DAYS).json()
    # The team's fifteen waits (45, 60, 120, ..., 660, 900, 1500, 2400): the 8th and the 14th, not the mean or the
    # largest; each resolution took twice its wait.
    assert times(s) == (spread(15, 420.0, 1500.0), spread(15, 840.0, 3000.0))
    assert {a["agent"]["name"]: times(a) for a in s["by_agent"]} == {
        "Grace": (spread(11, 360.0, 600.0), spread(11, 720.0, 1200.0)),  # the 6th and 10th of 60 ... 660
        "Linus": (spread(4, 900.0, 2400.0), spread(4, 1800.0, 4800.0)),  # the 2nd and 4th of 45, 900, 1500, 2400
    }
    assert times(grace.get("/api/v1/reports/summary", **TWO_DAYS, agent=grace.id).json()) == (
        spread(11, 360.0, 600.0), spread(11, 720.0, 1200.0))

    # Monday's twelve (45, 60 ... 660): the 6th and the 11th, not the median between two values; Tuesday's three.
    days = grace.get("/api/v1/reports/daily", **TWO_DAYS).json()["days"]
    assert [times(d) for d in days] == [(spread(12, 300.0, 600.0), spread(12, 600.0, 1200.0)),
                                        (spread(3, 1500.0, 2400.0), spread(3, 3000.0, 4800.0))]
    his = grace.get("/api/v1/reports/daily", **TWO_DAYS, agent=linus.id).json()["days"]
    assert [times(d) for d in his] == [(spread(1, 45.0, 45.0), spread(1, 90.0, 90.0)),
                                       (spread(3, 1500.0, 2400.0), spread(3, 3000.0, 4800.0))]

    rows = list(csv.DictReader(io.StringIO(grace.get("/api/v1/reports/summary", **TWO_DAYS, format="csv").content.decode())))
    assert [(r["agent_name"], r["first_response_p50"], r["first_response_p90"], r["resolution_p50"], r["resolution_p90"])
            for r in rows] == [("All", "420.0", "1500.0", "840.0", "3000.0"), ("Grace", "360.0", "600.0", "720.0", "1200.0"),
                               ("Linus", "900.0", "2400.0", "1800.0", "4800.0")]


def test_a_first_response_past_its_target_is_one_breach_of_the_assignee_on_the_day_it_fell_due(
    make_customer, make_agent, settings
):
    settings.PARLEY_FIRST_RESPONSE_SECONDS = 60
    settings.PARLEY_TIME_ZONE = "UTC"
    settings.PARLEY_BUSINESS_HOURS = ""
    grace, linus = make_agent("grace"), make_agent("linus")
    ada = make_customer("Ada")
    # Ada writes half a minute before Monday's midnight: the answer is due on Tuesday.
    asked, question = at(MONDAY, 23, 59, 30), uuid.uuid4()
    EventStore().append(f"message-{question}", [MessageSent(question, uuid.UUID(ada.id), "customer", ada.id, "Ada",
                                                            "Where is my parcel?", asked)], 0)
    settle()
    # Grace takes the conversation, then hands it to Linus: he holds it when the answer falls due.
    assert grace.post(f"/api/v1/conversations/{ada.id}/claim").status_code == 200
    handed = grace.post(f"/api/v1/conversations/{ada.id}/assign", {"agent_id": linus.id, "expected_assignee": int(grace.id)})
    assert handed.status_code == 200, handed.content
    settle()
    due = at(TUESDAY, 0, 0, 30)
    assert timers.fire_due(now=due - dt.timedelta(seconds=1)) == 0
    assert timers.fire_due(now=due) == 1
    settle()
    [breach] = [r.event for r in EventStore().read_all(Cursor.start()) if isinstance(r.event, FirstResponseSlaBreached)]
    assert (breach.due_at, breach.at) == (due, due)

    s = grace.get("/api/v1/reports/summary", **TWO_DAYS).json()
    assert s["sla_breaches"] == 1
    assert {a["agent"]["name"]: a["sla_breaches"] for a in s["by_agent"]} == {"Linus": 1}
    assert grace.get("/api/v1/reports/summary", **TWO_DAYS, agent=linus.id).json()["sla_breaches"] == 1
    assert grace.get("/api/v1/reports/summary", **TWO_DAYS, agent=grace.id).json()["sla_breaches"] == 0
    days = grace.get("/api/v1/reports/daily", **TWO_DAYS).json()["days"]
    assert [(d["day"], d["conversations"], d["sla_breaches"]) for d in days] == [
        (MONDAY.isoformat(), 1, 0), (TUESDAY.isoformat(), 0, 1)]
    rows = list(csv.DictReader(io.StringIO(grace.get("/api/v1/reports/daily", **TWO_DAYS, format="csv").content.decode())))
    assert [r["sla_breaches"] for r in rows] == ["0", "1"]


@pytest.mark.parametrize(("params", "code"), [
    ({"from": "2026-02-01", "to": "2026-01-01"}, "invalid_range"),
    ({"from": "2025-01-01", "to": "2026-12-31"}, "invalid_range"),
    ({"from": "yesterday"}, "invalid_parameter"),
    ({"to": "2026-02-30"}, "invalid_parameter"),
    ({"agent": "999999"}, "unknown_agent"),
    ({"agent": "grace"}, "unknown_agent"),
    ({"format": "xml"}, "invalid_parameter"),
])
def test_bad_ranges_and_unknown_agents_are_refused_clearly(agent, params, code):
    for path in ("/api/v1/reports/summary", "/api/v1/reports/daily"):
        r = agent.get(path, **params)
        assert (r.status_code, r.json()["error"]["code"]) == (400, code), r.content


def test_an_agent_called_support_is_an_agent_like_any_other(make_agent):
    support = make_agent("support")  # shown as "Support", like an id no user answers to
    r = support.get("/api/v1/reports/summary", agent=support.id)
    assert r.status_code == 200, r.content


def test_reports_are_for_agents_only(customer):
    assert customer.get("/api/v1/reports/summary").status_code == 403


def test_the_reports_page_draws_its_charts_and_tables_and_refuses_a_reversed_range_plainly(seeded, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="grace"))
    page = client.get("/agent/reports/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<svg class=\"chart__svg\"") == 3 and 'id="tile-conversations">2<' in html
    assert "4.5 of 5 (2)" in html and "Grace" in html and "Linus" in html
    reversed_range = client.get("/agent/reports/", {"from": "2026-02-01", "to": "2026-01-01"})
    assert reversed_range.status_code == 400 and "comes after the last one" in reversed_range.content.decode()
    assert client.get("/agent/reports/", {"from": "soon"}).status_code == 400


def test_the_reports_page_shows_one_agent_picked_from_those_with_facts_and_refuses_an_unknown_one(seeded, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="grace"))
    grace, linus = seeded["grace"], seeded["linus"]
    html = client.get("/agent/reports/").content.decode()
    # The picker offers the whole team and every agent with facts in the range.
    assert '<option value="">Whole team</option>' in html
    assert f'<option value="{grace.id}">Grace</option>' in html and f'<option value="{linus.id}">Linus</option>' in html

    page = client.get("/agent/reports/", {"agent": linus.id})
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<option value="{linus.id}" selected>Linus</option>' in html
    # Linus's own figures: his one resolution, his rating (the 5 that replaced the 2), his replies charted.
    assert "5.0 of 5 (1)" in html and "Replies per day" in html and "Conversations started per day" not in html
    assert f"agent={linus.id}&amp;format=csv" in html  # the downloads are his too
    by_agent = html.split('id="by-agent"')[1].split("</table>")[0]
    assert "Linus" in by_agent and "Grace" not in by_agent

    for unknown in ("999999", "not-an-id", "1" * 30):
        refused = client.get("/agent/reports/", {"agent": unknown})
        assert refused.status_code == 400 and "no such agent" in refused.content.decode()


def test_the_reports_page_is_for_agents_only(client):
    assert client.get("/agent/reports/").status_code == 302  # to the sign-in page
