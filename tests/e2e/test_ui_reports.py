"""Satisfaction and reports in a real browser (Debian's Chromium) against a real
server: a resolved conversation's rating prompt on the customer's page, the
rating in the agents' dashboard, the reports page over a seeded month, and
what the page and the website widget say outside business hours."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, http
from tests.e2e.test_ui import (  # noqa: F401  (fixtures)
    DESKTOP,
    Watched,
    browser,
    conversation_row,
    customer_send,
    empty_stack,
    expect,
    log_in_agent,
    open_customer,
    pages,
    save_screenshot,
)

pytestmark = pytest.mark.e2e


def test_a_resolved_conversation_asks_the_customer_for_a_rating_and_agents_see_it(browser, pages, stack):  # noqa: F811
    ada = stack.register_customer("Ada Lovelace", "ada@example.com")
    customer = open_customer(browser, pages, stack, ada["token"])
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)
    customer_send(stack, ada["token"], "My parcel is late")
    prompt = customer.locator("#rating")
    expect(prompt).to_be_hidden()

    status, _ = http("POST", f"{stack.url}/api/v1/conversations/{ada['customer_id']}/status", {"status": "resolved"},
                     stack.agent_token())
    assert status == 200
    expect(prompt).to_be_visible()  # the conversation.rating frame, live
    prompt.get_by_role("radio", name=re.compile(r"^4 ")).check()
    prompt.locator("#rating-comment").fill("Quick, <b>thanks</b>")
    prompt.get_by_role("button", name="Send rating").click()
    expect(prompt.locator("#rating-status")).to_have_text(re.compile("you rated us 4 of 5"))
    save_screenshot(customer, "rating-prompt.png")

    row = conversation_row(agent, ada["customer_id"])
    expect(row.locator(".tag--rating")).to_contain_text("Rated 4/5")
    row.click()
    expect(agent.locator("#wf-rating")).to_contain_text("Rated 4/5")
    # The comment is text: shown as written, never as markup.
    expect(agent.locator("#wf-rating .visually-hidden")).to_contain_text("Quick, <b>thanks</b>")

    # Reloaded, the page asks again only for what the server says: still resolved, rated 4.
    customer.reload()
    expect(prompt).to_be_visible()
    expect(prompt.locator('input[value="4"]')).to_be_checked()


def seed_month(stack: Any) -> dict[str, int]:
    status, me = http("GET", f"{stack.url}/api/v1/agents/me", None, stack.agent_token())
    assert status == 200
    code = (f"import json; from tests.support.reports_seed import seed; "
            f"print(json.dumps(seed({str(me['id'])!r}, 30)))")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=stack.env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_reports_page_charts_a_seeded_month_and_its_range_picker_narrows_it(browser, pages, empty_stack):  # noqa: F811
    stack = empty_stack
    written = seed_month(stack)
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)
    agent.locator("#account-menu summary").click()
    agent.locator("#open-reports").click()
    expect(agent).to_have_url(re.compile(r"/agent/reports/$"))

    # The workers fold the month; the page shows it once they have (reload until then).
    expected = str(written["conversations"])
    for _ in range(60):
        if agent.locator("#tile-conversations").inner_text() != "0":
            break
        agent.wait_for_timeout(500)
        agent.reload()
    expect(agent.locator("#tile-conversations")).to_have_text(expected)
    charts = agent.locator("svg.chart__svg")
    expect(charts).to_have_count(3)
    expect(agent.get_by_role("img", name=re.compile("Conversations started per day"))).to_be_visible()
    assert agent.locator("svg.chart__svg").first.locator("rect").count() == 30
    average = round(written["score_sum"] / written["ratings"], 2)
    expect(agent.locator("#tile-rating")).to_contain_text(f"({written['ratings']})")
    expect(agent.locator("#tile-rating")).to_contain_text(f"{average:g}")
    save_screenshot(agent, "reports.png")

    # Narrow the range to one week: one bar per day.
    days = agent.locator("#by-day tbody tr th").all_inner_texts()
    agent.locator("#report-from").fill(days[-7])
    agent.get_by_role("button", name="Show").click()
    expect(agent.locator("#by-day tbody tr")).to_have_count(7)
    assert agent.locator("svg.chart__svg").first.locator("rect").count() == 7

    # One agent: the one who answered the month (the seed's). The choice stays in the address.
    picker = agent.locator("#report-agent")
    expect(picker.locator("option")).to_have_count(2)  # the whole team, and them
    picker.select_option(index=1)
    agent.get_by_role("button", name="Show").click()
    expect(agent).to_have_url(re.compile(r"[?&]agent=\d+"))
    expect(agent.get_by_role("img", name=re.compile("Replies per day"))).to_be_visible()
    expect(agent.locator("#tile-conversations")).to_have_text("0")  # conversations started count for the team
    expect(agent.locator("#by-day tbody tr")).to_have_count(7)


def test_outside_business_hours_the_page_and_the_widget_say_when_we_are_back_and_the_away_reply_shows_as_automatic(
        browser, pages, tmp_path):  # noqa: F811
    import datetime as dt

    from tests.e2e.conftest import start_stack, stop_stack
    from tests.e2e.test_widget import HOST_ADDRESS, HostSite

    today = dt.datetime.now(dt.timezone.utc).date()
    closed = " ".join(str(today + dt.timedelta(days=d)) for d in (-1, 0, 1))
    opening = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(0))
    away = f"We're away, we reply by {opening:%A} {opening.day} {opening:%B} at 00:00 UTC."
    host = HostSite(HOST_ADDRESS)  # a website with the widget
    stack, drop = start_stack(tmp_path, extra_env={
        "PARLEY_BUSINESS_HOURS": "Mon-Sun 00:00-24:00", "PARLEY_TIME_ZONE": "UTC", "PARLEY_HOLIDAYS": closed,
        "PARLEY_WIDGET_ORIGINS": host.origin})
    host.parley = stack.url
    try:
        ada = stack.register_customer("Ada Lovelace", "ada@example.com")
        customer = open_customer(browser, pages, stack, ada["token"])
        expect(customer.locator("#away")).to_have_text(away)
        # The widget on the website says it in its header, where it says how soon the team replies.
        shop = Watched(browser.new_context(viewport=DESKTOP).new_page())
        pages.append(shop)
        shop.page.goto(host.url(token=ada["token"]))
        shop.page.get_by_role("button", name="Open support chat").click()
        expect(shop.page.frame_locator("parley-widget iframe").locator("#w-availability")).to_have_text(away)
        customer_send(stack, ada["token"], "Hello, anyone?")
        customer_send(stack, ada["token"], "Still there?")
        automatic = customer.locator('.msg[data-sender="system"]')
        expect(automatic).to_have_count(1)
        expect(automatic.locator(".msg__automatic")).to_have_text("Automatic reply")
        expect(automatic).to_contain_text("we reply by")
        save_screenshot(customer, "away-reply.png")
    finally:
        stop_stack(stack)
        drop()
        host.close()
