"""The pages hold together on a phone (390 × 844, and the narrowest, 320 × 640) and a desktop (1280 × 800):
in their headers, composers and open menus no two visible boxes of text or
controls overlap, none is cut by the screen or inside its own box, and
every control is at least 40 px each way. Measured from the boxes the
browser laid out (tests/e2e/layout.py), in the states that used to break
it: an unread count, the offline banner, 40-character names, the offer of
notifications, every menu open, the list of saved replies. The keyboard's
hint is not shown on a phone, and Send on an empty box looks disabled."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.e2e.conftest import http
from tests.e2e.layout import assert_laid_out, boxes, problems
from tests.e2e.test_ui import (  # noqa: F401  (browser and pages are fixtures)
    DESKTOP,
    HIDE_TAB,
    PHONE,
    Watched,
    agent_send,
    browser,
    conversation_row,
    create_agent,
    customer_send,
    expect,
    pages,
    save_screenshot,
)
from tests.e2e.test_ui_workflow import token_for

pytestmark = pytest.mark.e2e

#: Forty characters, no room to break but at the hyphen.
LONG_CUSTOMER = "Maximiliana Wolfeschlegelsteinhausen-Ber"
LONG_AGENT = "Bartholomew Montgomery-Fitzwilliam Smyth"
assert len(LONG_CUSTOMER) == len(LONG_AGENT) == 40

CUSTOMER_REGIONS = [".chat-header", "#push-offer", "#push-note", "#offline", ".composer-area",
                    "details[open] > .menu__panel"]
AGENT_REGIONS = [".sidebar__header", ".presence", "#search", ".scopes", ".sidebar__tools", ".conversation__header",
                 ".workflow", "#offline", ".composer-area", "details[open] > .menu__panel"]
#: The narrowest phones still sold, too.
SMALL_PHONE = {"width": 320, "height": 640}
VIEWPORTS = [pytest.param(PHONE, id="phone-390x844"), pytest.param(DESKTOP, id="desktop-1280x800"),
             pytest.param(SMALL_PHONE, id="phone-320x640")]


def new_page(browser: Any, pages: list[Watched], viewport: dict[str, int]) -> Any:
    phone = viewport["width"] < 760
    context = browser.new_context(viewport=viewport, device_scale_factor=2 if phone else 1, is_mobile=phone, has_touch=phone)
    w = Watched(context.new_page())
    pages.append(w)
    return w.page


def go_offline(page: Any) -> None:
    page.context.set_offline(True)
    page.evaluate("window.parley.socket.drop()")
    expect(page.locator("#offline")).to_be_visible()


def back_online(page: Any) -> None:
    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def sign_in(page: Any, stack: Any, username: str, password: str) -> None:
    """Sign in to the dashboard as an agent and wait for its socket."""
    page.goto(f"{stack.url}/agent/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def check_every_menu(page: Any, regions: list[str], what: str, menus: list[str]) -> None:
    for summary in menus:
        page.locator(summary).click()
        panel = page.locator(f"details[open]:has(> {summary.split(' > ')[-1]}) > .menu__panel").first
        expect(panel).to_be_visible()
        assert_laid_out(page, regions, f"{what}, {summary} open")
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()


def looks(button: Any) -> dict[str, str]:
    """How a button is drawn: the computed styles that tell a live button from a dead one."""
    return dict(button.evaluate("""el => { const s = getComputedStyle(el);
        return {background: s.backgroundColor, color: s.color, opacity: s.opacity, cursor: s.cursor}; }"""))


def check_the_composer_at_rest(page: Any, viewport: dict[str, int], what: str) -> None:
    """The keyboard's hint shows only where there is a keyboard (never on a
    phone's touch screen); Send on an empty box is disabled, and drawn so:
    not as it is once there is something to send."""
    hint = page.locator("#composer-hint")
    if viewport == DESKTOP:
        expect(hint).to_be_visible()
    else:
        expect(hint).to_be_hidden()
    box, send = page.locator("#composer-input"), page.locator("#send")
    expect(box).to_have_value("")
    expect(send).to_be_disabled()
    idle = looks(send)
    box.fill("Something to send")
    expect(send).to_be_enabled()
    ready = looks(send)
    box.fill("")
    expect(send).to_be_disabled()
    assert idle["background"] != ready["background"] or idle["opacity"] != ready["opacity"], (what, idle, ready)
    assert idle["cursor"] == "not-allowed", (what, idle)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_customer_page_holds_together(browser, pages, stack, viewport):
    ada = stack.register_customer(LONG_CUSTOMER, "maximiliana.wolfeschlegelsteinhausen@example.com")
    page = new_page(browser, pages, viewport)
    page.goto(f"{stack.url}/chat/?token={ada['token']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    # In the background: the answers stay unread, and the header counts them.
    page.evaluate(HIDE_TAB)
    # The answers come from an agent with a 40-character name, who is typing.
    username = f"long{viewport['width']}"
    token = token_for(stack, username, create_agent(stack, username, "Long"))
    assert http("PATCH", f"{stack.url}/api/v1/agents/me", {"display_name": LONG_AGENT}, token)[0] == 200
    for i in range(12):
        agent_send(stack, token, ada["customer_id"], f"Answer number {i + 1}")
    expect(page.locator("#unread")).to_have_text("12 unread")
    with connect(stack.ws_url(token)) as agent_socket:
        agent_socket.send(json.dumps({"type": "typing", "customer_id": ada["customer_id"]}))
        expect(page.locator("#typing")).to_have_text(f"{LONG_AGENT} is typing…")
        assert_laid_out(page, CUSTOMER_REGIONS, f"the customer page at {viewport['width']}x{viewport['height']}, "
                        "a 40-character agent typing")
    expect(page.get_by_role("button", name="Enable notifications")).to_be_visible()
    assert boxes(page, CUSTOMER_REGIONS) >= 5
    what = f"the customer page at {viewport['width']}x{viewport['height']} with 12 unread and the offer of notifications"
    check_the_composer_at_rest(page, viewport, what)
    assert_laid_out(page, CUSTOMER_REGIONS, what)
    check_every_menu(page, CUSTOMER_REGIONS, what, ["#chat-search > summary", ".chat-header__actions > details:not(#chat-search) > summary"])

    go_offline(page)
    assert_laid_out(page, CUSTOMER_REGIONS, f"{what}, offline")
    page.locator("#composer-input").fill("Are you still there? My parcel has not arrived and I would like to know why.")
    assert_laid_out(page, CUSTOMER_REGIONS, f"{what}, offline, a message being written")
    if viewport == PHONE:
        save_screenshot(page, "customer-phone-offline.png")
    back_online(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_dashboard_holds_together(browser, pages, stack, viewport):
    username = f"bart{viewport['width']}"
    password = create_agent(stack, username, "Bart")
    token = token_for(stack, username, password)
    status, _ = http("PATCH", f"{stack.url}/api/v1/agents/me", {"display_name": LONG_AGENT}, token)
    assert status == 200
    status, body = http("POST", f"{stack.url}/api/v1/canned-responses", {
        "shortcut": f"parcel{viewport['width']}", "title": "Where the parcel is",
        "body": "Hello {{customer.first_name}}, your parcel left our warehouse today. Kind regards, {{agent.name}}"}, token)
    assert status == 201, body
    ada = stack.register_customer(LONG_CUSTOMER, "maximiliana@example.com")
    for i in range(3):
        customer_send(stack, ada["token"], f"Question number {i + 1} about my parcel, which has not arrived yet.")
    status, _ = http("POST", f"{stack.url}/api/v1/conversations/{ada['customer_id']}/labels",
                     {"add": ["vip", "refund-request", "needs-follow-up"]}, token)
    assert status == 200

    page = new_page(browser, pages, viewport)
    sign_in(page, stack, username, password)
    row = conversation_row(page, ada["customer_id"])
    expect(row.locator(".count")).to_have_text("3")
    expect(page.locator("#total-unread")).to_be_visible()
    what = f"the dashboard at {viewport['width']}x{viewport['height']}"
    assert_laid_out(page, AGENT_REGIONS, f"{what}, the list")
    check_every_menu(page, AGENT_REGIONS, f"{what}, the list", ["#account-menu > summary"])

    # The conversation open: its header, the bar of workflow controls, the reply box.
    row.click()
    expect(page.locator("#conversation-title")).to_have_text(LONG_CUSTOMER)
    expect(page.locator("#wf-labels .label")).to_have_count(3)
    assert_laid_out(page, AGENT_REGIONS, f"{what}, a conversation open")
    check_the_composer_at_rest(page, viewport, f"{what}, a reply")
    page.locator("#mode-note").click()
    check_the_composer_at_rest(page, viewport, f"{what}, a note")
    page.locator("#mode-reply").click()
    check_every_menu(page, AGENT_REGIONS, f"{what}, a conversation open",
                     ["#wf-labels-menu > summary", "#wf-snooze-menu > summary", "#account-menu > summary"]
                     if viewport == DESKTOP else ["#wf-labels-menu > summary", "#wf-snooze-menu > summary"])

    # Saved replies: "/" offers them above the reply box.
    box = page.locator("#composer-input")
    box.click()
    box.press_sequentially(f"/parcel{viewport['width']}")
    expect(page.locator("#canned-list [role=option]")).to_have_count(1)
    assert_laid_out(page, [*AGENT_REGIONS, "#canned-list"], f"{what}, the saved replies offered")
    if viewport == PHONE:
        save_screenshot(page, "agent-phone-saved-replies.png")
    page.keyboard.press("Enter")
    expect(box).to_have_value(f"Hello Maximiliana, your parcel left our warehouse today. Kind regards, {LONG_AGENT}")
    assert_laid_out(page, AGENT_REGIONS, f"{what}, a long reply in the box")

    go_offline(page)
    assert_laid_out(page, AGENT_REGIONS, f"{what}, offline")
    back_online(page)
    if viewport == DESKTOP:
        save_screenshot(page, "agent-long-names.png")


#: The page scrolls: its controls are checked in the first screen, the rest for width.
REPORTS_REGIONS = [".reports__header", ".reports__range"]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_reports_page_holds_together(browser, pages, stack, viewport):
    """The header, the range and agent picker (an agent with a 40-character name
    in it), the tiles and the downloads: laid out at every size, the picker too."""
    username = f"rep{viewport['width']}"
    password = create_agent(stack, username, "Rep")
    token = token_for(stack, username, password)
    assert http("PATCH", f"{stack.url}/api/v1/agents/me", {"display_name": LONG_AGENT}, token)[0] == 200
    # The picker lists the agents the reports know: this one answers a customer.
    ada = stack.register_customer(LONG_CUSTOMER, f"reports{viewport['width']}@example.com")
    customer_send(stack, ada["token"], "Where is my parcel?")
    agent_send(stack, token, ada["customer_id"], "On its way.")
    page = new_page(browser, pages, viewport)
    sign_in(page, stack, username, password)
    page.goto(f"{stack.url}/agent/reports/")
    mine = page.locator("#report-agent option", has_text=LONG_AGENT)
    for _ in range(60):  # the workers fold the reply into the reports: reload until they have
        if mine.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(mine.first).to_be_attached()  # (the agents of the other sizes' runs share the stack and the name)
    what = f"the reports page at {viewport['width']}x{viewport['height']}"
    assert boxes(page, REPORTS_REGIONS) >= 6
    assert_laid_out(page, REPORTS_REGIONS, what)
    # Tiles, charts and tables fit the width (the page scrolls down, never sideways).
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], what
    page.locator("#report-agent").select_option(label=LONG_AGENT)
    if viewport == DESKTOP:
        assert_laid_out(page, REPORTS_REGIONS, f"{what}, one agent chosen")
    # On a phone a closed picker cannot hold a 40-character name (the open one
    # lists it whole): the report names the agent in full under it.
    page.get_by_role("button", name="Show").click()
    expect(page.locator(".reports > p.muted").first).to_contain_text(f"{LONG_AGENT}, ")
    if viewport == SMALL_PHONE:
        save_screenshot(page, "reports-phone-320.png")


def test_the_layout_check_finds_an_overlap_a_cut_and_a_small_target(browser, pages, stack):
    """The check above can fail: an overlap, a cut select and a small button are each reported."""
    ada = stack.register_customer("Ada Check", "ada.check@example.com")
    page = new_page(browser, pages, PHONE)
    page.goto(f"{stack.url}/chat/?token={ada['token']}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert_laid_out(page, CUSTOMER_REGIONS, "before")
    # Styles set from a script (CSSOM), as the page's policy allows.
    page.evaluate("document.querySelector('#attach').style.marginRight = '-60px'")
    found = problems(page, CUSTOMER_REGIONS)
    assert any(p.startswith("overlap:") and "#attach" in p for p in found), found
    page.evaluate("document.querySelector('#attach').style.marginRight = ''")
    page.evaluate("document.querySelector('#send').style.minWidth = '0'; document.querySelector('#send').style.width = '30px'")
    found = problems(page, CUSTOMER_REGIONS)
    assert any("smaller than 40x40" in p and "#send" in p for p in found), found
    assert any(p.startswith("cut:") and "#send" in p for p in found), found
    page.evaluate("document.querySelector('.chat-header').style.transform = 'translateX(-80px)'")
    found = problems(page, CUSTOMER_REGIONS)
    assert any(p.startswith("outside") for p in found), found
