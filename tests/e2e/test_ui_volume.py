"""The dashboard at a real team's volume: two agents, more than sixty
conversations, the one an agent claimed older than the first page. Every
tab and filter shows exactly what the server answers for it (all its
pages, in its order), live updates keep it so, and a reload keeps the
tab and filters (they are in the address)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import Stack, http, start_stack, stop_stack
from tests.e2e.test_ui import (  # noqa: F401  (browser and pages are fixtures)
    browser,
    conversation_row,
    create_agent,
    customer_send,
    expect,
    log_in_agent,
    pages,
    save_screenshot,
)
from tests.e2e.test_ui_workflow import token_for

pytestmark = pytest.mark.e2e

CONVERSATIONS = 64
PAGE = 30  # the dashboard's page (web/static/web/js/agent.js)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A server of this module's own: the list holds exactly what this test wrote."""
    tmp: Path = tmp_path_factory.mktemp("volume-stack")
    s, drop = start_stack(tmp)
    yield s
    stop_stack(s)
    drop()


def server_answer(stack: Stack, token: str, **filters: str) -> list[str]:
    """The whole list the server gives this agent under these filters, in its order."""
    status, body = http("GET", f"{stack.url}/api/v1/conversations?{urlencode({'limit': 500, **filters})}", token=token)
    assert status == 200, body
    return [c["customer_id"] for c in body["conversations"]]


def shown(page: Any) -> list[str]:
    """Every row of the list, after loading every older page the list offers."""
    more = page.get_by_role("button", name="Load older conversations")
    rows = page.locator(".conv")
    while more.is_visible():
        before = rows.count()
        more.click()
        expect(rows).not_to_have_count(before)
    return [rows.nth(i).get_attribute("data-customer-id") for i in range(rows.count())]


def expect_list(page: Any, expected: list[str]) -> None:
    """The list shows exactly these rows, in this order (pages loaded as needed)."""
    rows = page.locator(".conv")
    if not expected:
        expect(page.locator("#filter-empty")).to_be_visible()
        expect(rows).to_have_count(0)
        return
    # The first page is there (live updates may have brought a row or two more)...
    expect(rows.first).to_have_attribute("data-customer-id", expected[0])
    expect(rows.nth(min(len(expected), PAGE) - 1)).to_be_visible()
    # ... and, page after page, the whole list is the server's.
    assert shown(page) == expected


def test_every_tab_and_filter_shows_the_servers_answer_past_the_first_page_and_survives_a_reload(browser, pages, stack):
    grace_pw, linus_pw = create_agent(stack, "grace", "Grace"), create_agent(stack, "linus", "Linus")
    grace, linus = token_for(stack, "grace", grace_pw), token_for(stack, "linus", linus_pw)
    customers = [stack.register_customer(f"Customer {i:02d}", f"c{i}@example.com") for i in range(CONVERSATIONS)]
    for i, c in enumerate(customers):
        customer_send(stack, c["token"], f"Question {i:02d}")
    ids = [c["customer_id"] for c in customers]
    oldest, old, older = ids[0], ids[3], ids[10]  # all three beyond the first page (newest first)
    for cid in (oldest, older):
        assert http("POST", f"{stack.url}/api/v1/conversations/{cid}/claim", token=grace)[0] == 200
    assert http("POST", f"{stack.url}/api/v1/conversations/{ids[20]}/claim", token=linus)[0] == 200
    assert http("POST", f"{stack.url}/api/v1/conversations/{old}/status", {"status": "pending"}, grace)[0] == 200
    for cid in (oldest, ids[40]):
        assert http("POST", f"{stack.url}/api/v1/conversations/{cid}/labels", {"add": ["vip"]}, grace)[0] == 200
    # The agents have read the first forty; Grace marks one of those unread again for herself.
    for cid in ids[:40]:
        status, body = http("GET", f"{stack.url}/api/v1/conversations/{cid}/messages?after=0", token=linus)
        for m in body["messages"]:
            assert http("POST", f"{stack.url}/api/v1/messages/{m['message_id']}/read", token=linus)[0] == 200
    assert http("POST", f"{stack.url}/api/v1/conversations/{old}/unread", token=grace)[0] == 200
    everything = server_answer(stack, grace)
    assert len(everything) == CONVERSATIONS and everything.index(oldest) >= PAGE

    page = log_in_agent(browser, pages, stack, "grace", grace_pw)
    expect_list(page, everything)

    # Mine: the claimed conversations, the oldest far down the list, on the first page of Mine.
    page.get_by_role("button", name="Mine", exact=True).click()
    mine = server_answer(stack, grace, assignee="me")
    assert set(mine) == {oldest, older}
    expect_list(page, mine)
    expect(page).to_have_url(re.compile(r"\?tab=mine$"))

    # A reload keeps the tab (it is in the address), and shows the same list.
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.get_by_role("button", name="Mine", exact=True)).to_have_attribute("aria-pressed", "true")
    expect_list(page, mine)

    page.get_by_role("button", name="Unassigned", exact=True).click()
    expect_list(page, server_answer(stack, grace, assignee="none"))
    page.get_by_role("button", name="All", exact=True).click()
    page.locator("#status-filter").select_option("pending")
    expect_list(page, server_answer(stack, grace, status="pending"))
    page.locator("#status-filter").select_option("")
    page.locator("#label-filter").select_option("vip")
    vip = server_answer(stack, grace, label="vip")
    assert set(vip) == {oldest, ids[40]}
    expect_list(page, vip)
    page.get_by_label("Show").select_option("unread")
    expect_list(page, server_answer(stack, grace, label="vip", unread="true"))
    page.locator("#label-filter").select_option("")
    unread = server_answer(stack, grace, unread="true")
    assert set(unread) == {*ids[40:], old}
    expect_list(page, unread)
    expect(conversation_row(page, old)).to_have_class(re.compile(r"conv--marked"))

    # Filters combine, and the address holds them all: a reload shows the same list.
    page.get_by_role("button", name="Mine", exact=True).click()
    page.locator("#label-filter").select_option("vip")
    page.get_by_label("Show").select_option("all")
    expect(page).to_have_url(re.compile(r"\?tab=mine&label=vip$"))
    expect_list(page, [oldest])
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#label-filter")).to_have_value("vip")
    expect_list(page, [oldest])

    # Live: Linus claims a conversation nobody held while Grace looks at
    # Unassigned: it leaves her list at once. A new customer message comes in
    # at the top of All.
    page.locator("#label-filter").select_option("")
    page.get_by_role("button", name="Unassigned", exact=True).click()
    taken = server_answer(stack, grace, assignee="none")[0]
    expect(conversation_row(page, taken)).to_be_visible()
    assert http("POST", f"{stack.url}/api/v1/conversations/{taken}/claim", token=linus)[0] == 200
    expect(conversation_row(page, taken)).to_have_count(0)
    page.get_by_role("button", name="All", exact=True).click()
    customer_send(stack, customers[5]["token"], "Anyone there?")
    expect(page.locator(".conv").first).to_have_attribute("data-customer-id", ids[5])
    expect_list(page, server_answer(stack, grace))
    save_screenshot(page, "agent-volume.png")
