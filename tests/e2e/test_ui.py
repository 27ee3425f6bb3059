"""The two pages in a real browser (Debian's Chromium, driven by Playwright)
against a real server: a customer and agents exchanging messages, read
states and badges, hostile message bodies, and a dropped connection."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Stack, http, start_stack, stop_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
# Waiting is not asserting: expect() retries until the page shows what it
# should; a loaded CI machine only needs longer before it gives up.
expect.set_options(timeout=15_000)

ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

# Pretend the tab went to the background (headless pages are always
# "visible"), and back; the page listens for visibilitychange like any tab.
HIDE_TAB = """() => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW_TAB = """() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def chromium_path() -> str | None:
    for candidate in (os.environ.get("PARLEY_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        # Never a skip: a browser test that did not run has not passed.
        pytest.fail("Chromium is required for the browser tests (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


# Every violation of the pages' Content-Security-Policy, as the browser reports it.
RECORD_CSP_VIOLATIONS = """() => {
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation",
    (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
}"""
PAGES = ("/chat/", "/agent/")


class Watched:
    """A page with its dialogs, script errors and Content-Security-Policy
    violations recorded, so a test can say none happened; and the policy
    each of the two pages came with, so it can say what that was."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.policies: dict[str, str | None] = {}
        page.add_init_script(f"({RECORD_CSP_VIOLATIONS})()")
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.errors.append(f"CSP: {message.text}")

    def _response(self, response: Any) -> None:
        path = re.sub(r"^https?://[^/]+", "", response.url).split("?")[0]
        if response.request.resource_type == "document" and path in PAGES:
            self.policies[path] = response.headers.get("content-security-policy")

    def csp_violations(self) -> list[str]:
        try:
            return list(self.page.evaluate("() => window.__cspViolations || []"))
        except Exception:  # a page that navigated away or closed has none left to report
            return []

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def pages(browser: Any) -> Iterator[list[Watched]]:
    opened: list[Watched] = []
    yield opened
    violations = {id(w): w.csp_violations() for w in opened}
    for w in opened:
        w.page.context.close()
    for w in opened:
        assert w.dialogs == [], f"a dialog opened: {w.dialogs}"
        assert w.errors == [], f"script errors: {w.errors}"
        assert violations[id(w)] == [], f"Content-Security-Policy violations: {violations[id(w)]}"
        for path, policy in w.policies.items():
            assert_strict_policy(path, policy)


def assert_strict_policy(path: str, policy: str | None) -> None:
    """The page came with a policy that allows scripts from this origin only:
    no inline script, no eval, nothing from elsewhere."""
    assert policy, f"{path} came without a Content-Security-Policy"
    directives = {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}
    assert directives.get("script-src") == ["'self'"], f"{path}: {policy}"
    assert directives.get("object-src") == ["'none'"] and directives.get("frame-ancestors") == ["'none'"], policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, policy


def open_customer(browser: Any, pages: list[Watched], stack: Stack, token: str) -> Any:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    w = Watched(context.new_page())
    pages.append(w)
    w.page.goto(f"{stack.url}/chat/?token={token}")
    expect(w.page).to_have_url(f"{stack.url}/chat/")  # the token is gone from the address bar
    expect(w.page.locator("#connection")).to_have_attribute("data-state", "live")
    return w.page


def log_in_agent(browser: Any, pages: list[Watched], stack: Stack, username: str, password: str) -> Any:
    context = browser.new_context(viewport=DESKTOP)
    w = Watched(context.new_page())
    pages.append(w)
    page = w.page
    page.goto(f"{stack.url}/agent/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.url}/agent/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return page


def send(page: Any, text: str) -> None:
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")


def conversation_row(agent_page: Any, customer_id: str) -> Any:
    return agent_page.locator(f'.conv[data-customer-id="{customer_id}"]')


def save_screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
    if os.environ.get("PARLEY_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, SCREENSHOTS / name)


def create_agent(stack: Stack, username: str, first_name: str) -> str:
    password = f"pw-{uuid.uuid4().hex[:12]}"
    code = (
        "from django.contrib.auth import get_user_model as m;"
        f"m().objects.create_user({username!r}, password={password!r}, is_staff=True, first_name={first_name!r})"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=stack.env, check=True, capture_output=True
    )
    return password


def agent_send(stack: Stack, token: str, customer_id: str, body: str) -> dict[str, Any]:
    status, sent = http(
        "POST", f"{stack.url}/api/v1/conversations/{customer_id}/messages", {"message_id": str(uuid.uuid4()), "body": body}, token
    )
    assert status == 201, sent
    return sent


def customer_send(stack: Stack, token: str, body: str) -> dict[str, Any]:
    status, sent = http("POST", f"{stack.url}/api/v1/messages", {"message_id": str(uuid.uuid4()), "body": body}, token)
    assert status == 201, sent
    return sent


@pytest.fixture
def empty_stack(tmp_path: Path) -> Iterator[Stack]:
    """A server of this test's own, with no conversation in it yet."""
    s, drop = start_stack(tmp_path)
    yield s
    stop_stack(s)
    drop()


def fully_in_view(page: Any, selector_or_locator: Any) -> None:
    """The element is wholly inside the thread's visible area, above the message box."""
    target = page.locator(selector_or_locator) if isinstance(selector_or_locator, str) else selector_or_locator
    expect(target).to_be_in_viewport(ratio=1)
    box = target.bounding_box()
    thread = page.locator("#thread").bounding_box()
    composer = page.locator(".composer-area").bounding_box()
    assert box is not None and thread is not None and composer is not None
    assert box["y"] >= thread["y"] - 1, (box, thread)
    assert box["y"] + box["height"] <= min(thread["y"] + thread["height"], composer["y"]) + 1, (box, thread, composer)


# -- tests ------------------------------------------------------------------------------------


def test_a_customer_and_an_agent_talk_both_ways_and_see_each_other_read(browser, pages, stack):
    ada = stack.register_customer("Ada Lovelace", "ada@example.com")
    customer = open_customer(browser, pages, stack, ada["token"])
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)

    # The customer writes; the dashboard shows an unread, unanswered conversation.
    send(customer, "Hello! My parcel has not arrived yet.")
    question = customer.locator(".msg--mine", has_text="My parcel has not arrived")
    expect(question).to_have_attribute("data-state", "sent")
    row = conversation_row(agent, ada["customer_id"])
    expect(row.locator(".count")).to_have_text("1")
    expect(row.locator(".tag--awaiting")).to_have_text("Waiting for a reply")
    expect(agent).to_have_title(re.compile(r"^\(1\) "))

    # The agent opens it: the timeline and the contact details show, and it is read on both sides.
    row.click()
    expect(agent.locator("#conversation-title")).to_have_text("Ada Lovelace")
    expect(agent.locator("#details-body")).to_contain_text("ada@example.com")
    expect(agent.locator(".msg--theirs", has_text="My parcel has not arrived")).to_have_count(1)
    expect(row.locator(".count")).to_have_count(0)
    expect(agent).not_to_have_title(re.compile(r"^\(\d+\) "))
    expect(question).to_have_attribute("data-state", "read")

    # The customer's tab is in the background: the agent's typing and reply arrive, unread.
    customer.evaluate(HIDE_TAB)
    agent.locator("#composer-input").fill("Sorry to hear that! Let me check")
    expect(customer.locator("#typing")).to_contain_text("is typing")
    agent.locator("#composer-input").press("Enter")
    reply = agent.locator(".msg--mine", has_text="Let me check")
    expect(customer.locator(".msg--theirs", has_text="Let me check")).to_have_count(1)
    expect(customer.locator("#typing")).to_have_text("")
    expect(customer.locator("#unread")).to_have_text("1 unread")
    expect(customer).to_have_title(re.compile(r"^\(1\) "))
    expect(reply).to_have_attribute("data-state", "sent")
    status, badge = http("GET", f"{stack.url}/api/v1/badge", token=ada["token"])
    assert (status, badge["unread"]) == (200, 1)

    # Back in front of the customer: read, the badge clears, the agent sees "Read".
    customer.evaluate(SHOW_TAB)
    expect(customer.locator("#unread")).to_be_hidden()
    expect(customer).not_to_have_title(re.compile(r"^\(\d+\) "))
    expect(reply).to_have_attribute("data-state", "read")

    # Customer typing shows on the dashboard; Shift+Enter makes a new line, Enter sends.
    box = customer.locator("#composer-input")
    box.fill("It was order 1042.")
    expect(agent.locator("#typing")).to_contain_text("Ada Lovelace is typing")
    box.press("Shift+Enter")
    box.press_sequentially("Thanks!")
    box.press("Enter")
    two_lines = agent.locator(".msg--theirs", has_text="It was order 1042.")
    expect(two_lines.locator(".msg__body")).to_have_text("It was order 1042.\nThanks!")
    expect(customer.locator(".msg--mine", has_text="Thanks!")).to_have_attribute("data-state", "read")

    # The customer edits their last message (Up arrow in an empty box).
    box.press("ArrowUp")
    expect(box).to_have_value("It was order 1042.\nThanks!")
    box.fill("It was order 1043, sorry.")
    box.press("Enter")
    expect(agent.locator(".msg--theirs", has_text="order 1043")).to_contain_text("Edited")
    expect(agent.locator(".msg", has_text="order 1042")).to_have_count(0)

    # Readable on a phone: nothing wider than the screen.
    assert customer.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # A fuller dashboard for the screenshot.
    for name, email, text in [
        ("Grace Hopper", "grace@example.com", "Can I change the delivery address on my order?"),
        ("Alan Turing", "alan@example.com", "The invoice for March shows the wrong VAT number."),
    ]:
        other = stack.register_customer(name, email)
        customer_send(stack, other["token"], text)
        expect(conversation_row(agent, other["customer_id"]).locator(".count")).to_have_text("1")
    agent.locator("#composer-input").fill("Found it: it leaves our warehouse today.")
    save_screenshot(customer, "customer-chat.png")
    save_screenshot(agent, "agent-dashboard.png")


def test_a_message_body_with_markup_is_shown_as_text_and_runs_nothing(browser, pages, stack):
    payload = "<img src=x onerror=alert(1)>"
    mallory = stack.register_customer("<b>Mallory</b>", "mallory@example.com")
    customer = open_customer(browser, pages, stack, mallory["token"])
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)

    send(customer, payload)
    row = conversation_row(agent, mallory["customer_id"])
    expect(row.locator(".conv__preview")).to_have_text(payload)
    expect(row.locator(".conv__name")).to_have_text("<b>Mallory</b>")
    row.click()
    expect(agent.locator(".msg--theirs .msg__body")).to_have_text(payload)
    send(agent, f"{payload} <script>alert(2)</script>")
    expect(customer.locator(".msg--theirs .msg__body")).to_have_text(f"{payload} <script>alert(2)</script>")

    for page in (customer, agent):
        assert page.locator("#messages img, #messages script, #conversation-list img, #conversation-list b").count() == 0
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.locator("#messages").inner_html()
    # The dialog listeners (checked when the pages close) saw nothing.


def test_after_losing_its_connection_the_customer_page_shows_every_message_exactly_once(browser, pages, stack):
    ada = stack.register_customer("Ada Offline", "offline@example.com")
    agent_token = stack.agent_token()
    agent_send(stack, agent_token, ada["customer_id"], "Before the outage")
    customer = open_customer(browser, pages, stack, ada["token"])
    expect(customer.locator(".msg", has_text="Before the outage")).to_have_count(1)

    # The network goes away and the socket with it.
    customer.context.set_offline(True)
    customer.evaluate("window.parley.socket.drop()")
    expect(customer.locator("#connection")).to_have_attribute("data-state", "offline")

    # Meanwhile: the agent answers three times, and the customer writes one (kept until sent).
    during = [f"While you were away, part {i}" for i in range(1, 4)]
    for body in during:
        agent_send(stack, agent_token, ada["customer_id"], body)
    send(customer, "Hello? Is anyone there?")
    pending = customer.locator(".msg--mine", has_text="Is anyone there?")
    expect(pending).to_have_attribute("data-state", "sending")
    stored = customer.evaluate("JSON.parse(localStorage.getItem(`parley.outbox.customer.${window.parley.thread.me.id}`))")
    assert [item["body"] for item in stored] == ["Hello? Is anyone there?"]
    expect(customer.locator(".msg", has_text="While you were away")).to_have_count(0)

    # Back online: the page reconnects, resumes from its last position, and sends what waited.
    customer.context.set_offline(False)
    expect(customer.locator("#connection")).to_have_attribute("data-state", "live")
    for body in during:
        expect(customer.locator(".msg", has_text=body)).to_have_count(1)
    expect(pending).not_to_have_attribute("data-state", "sending")
    expect(customer.locator(".msg")).to_have_count(5)

    # A second drop-and-resume changes nothing: still each message once.
    customer.evaluate("window.parley.socket.drop()")
    expect(customer.locator("#connection")).to_have_attribute("data-state", "live")
    agent_send(stack, agent_token, ada["customer_id"], "After the second reconnect")
    expect(customer.locator(".msg", has_text="After the second reconnect")).to_have_count(1)
    expect(customer.locator(".msg")).to_have_count(6)

    status, listed = http("GET", f"{stack.url}/api/v1/conversations/{ada['customer_id']}/messages?after=0", token=agent_token)
    assert status == 200
    assert [m["body"] for m in listed["messages"] if m["sender"]["kind"] == "customer"] == ["Hello? Is anyone there?"]
    assert customer.evaluate(f"localStorage.getItem(`parley.outbox.customer.{ada['customer_id']}`)") is None


def test_two_agents_see_each_other_and_stay_in_step(browser, pages, stack):
    password = create_agent(stack, "grace", "Grace")
    alan = stack.register_customer("Alan Turing", "alan@example.com")
    first = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)
    second = log_in_agent(browser, pages, stack, "grace", password)
    expect(first.locator("#presence")).to_contain_text("Grace")
    # The stack's own agent chose no name and Django has none: shown as the team, never by the login "agent".
    expect(second.locator("#presence")).to_contain_text("Support")
    expect(second.locator("#presence")).not_to_contain_text("agent")

    customer_send(stack, alan["token"], "Is anyone available to help with my invoice?")
    for page in (first, second):
        expect(conversation_row(page, alan["customer_id"]).locator(".count")).to_have_text("1")

    # Grace opens and reads it: the other agent's list follows.
    conversation_row(second, alan["customer_id"]).click()
    expect(second.locator(".msg--theirs", has_text="invoice")).to_have_count(1)
    expect(conversation_row(first, alan["customer_id"]).locator(".count")).to_have_count(0)

    # The other agent opens it too, from the keyboard, and sees Grace writing and then her reply.
    conversation_row(first, alan["customer_id"]).focus()
    first.keyboard.press("Enter")
    expect(first.locator("#composer-input")).to_be_focused()
    second.locator("#composer-input").fill("Yes, I can help with that.")
    expect(first.locator("#typing")).to_contain_text("Grace is writing a reply")
    second.locator("#composer-input").press("Enter")
    expect(first.locator(".msg--mine", has_text="I can help")).to_contain_text("Grace")
    expect(conversation_row(first, alan["customer_id"]).locator(".tag--awaiting")).to_have_count(0)

    # Grace signs off: she leaves the presence list.
    second.context.close()
    expect(first.locator("#presence")).not_to_contain_text("Grace")


def test_a_visitor_starts_a_chat_from_the_form_and_a_double_click_sends_once(browser, pages, stack):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    w = Watched(context.new_page())
    pages.append(w)
    page = w.page
    page.goto(f"{stack.url}/")
    expect(page).to_have_url(f"{stack.url}/chat/start/")
    page.get_by_label("Your name").fill("Vera Visitor")
    page.get_by_label("Email").fill("vera@example.com")
    page.get_by_role("button", name="Start chatting").click()
    expect(page).to_have_url(f"{stack.url}/chat/")
    expect(page.locator("#empty")).to_contain_text("Vera Visitor")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    page.locator("#composer-input").fill("Do you ship to Norway?")
    page.get_by_role("button", name="Send").dblclick()
    sent = page.locator(".msg--mine", has_text="Do you ship to Norway?")
    expect(sent).to_have_attribute("data-state", "sent")
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator(".msg", has_text="Do you ship to Norway?")).to_have_count(1)
    # Chromium can do push: the page offers it (push.js does the rest).
    expect(page.get_by_role("button", name="Enable notifications")).to_be_visible()
    manifest = page.evaluate("fetch('/manifest.webmanifest').then(r => r.json())")
    assert manifest["start_url"] == "/chat/" and manifest["display"] == "standalone"


def test_the_conversation_list_loads_older_conversations_on_request(browser, pages, stack):
    agent_token = stack.agent_token()
    for i in range(32):
        other = stack.register_customer(f"Batch Customer {i:02d}", f"batch{i}@example.com")
        last = customer_send(stack, other["token"], f"Question number {i}")
    status, everything = http(
        "GET", f"{stack.url}/api/v1/conversations?limit=500&min_position={last['position']}", token=agent_token
    )
    assert status == 200 and len(everything["conversations"]) >= 32
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)
    rows = agent.locator(".conv")
    expect(rows).to_have_count(30)
    more = agent.get_by_role("button", name="Load older conversations")
    while more.is_visible():
        before = rows.count()
        more.click()
        expect(rows).not_to_have_count(before)
    # Every conversation the server has is on the page, each once. The server's
    # count is read again until the two agree: earlier tests of this module
    # share the server, and a late event of theirs may add a conversation,
    # which the page then shows live.
    deadline = time.monotonic() + 20
    while True:
        total = len(http("GET", f"{stack.url}/api/v1/conversations?limit=500", token=agent_token)[1]["conversations"])
        if rows.count() == total:
            break
        assert time.monotonic() < deadline, f"the page shows {rows.count()} conversations, the server has {total}"
        time.sleep(0.2)
    ids = [rows.nth(i).get_attribute("data-customer-id") for i in range(total)]
    assert len(set(ids)) == total

    # A filter is the server's answer, page after page (never the loaded rows filtered).
    agent.get_by_label("Show").select_option("unread")
    status, unread = http("GET", f"{stack.url}/api/v1/conversations?limit=500&unread=true", token=agent_token)
    assert status == 200
    expected = [c["customer_id"] for c in unread["conversations"]]
    expect(rows.first).to_have_attribute("data-customer-id", expected[0])
    while more.is_visible():
        before = rows.count()
        more.click()
        expect(rows).not_to_have_count(before)
    assert [rows.nth(i).get_attribute("data-customer-id") for i in range(rows.count())] == expected


def test_the_pages_policy_blocks_an_injected_inline_script_and_the_watch_reports_it(browser, pages, stack):
    """The Content-Security-Policy check of every browser test can fail: a
    script injected into the page is refused, and the refusal is seen."""
    ada = stack.register_customer("Eve Example", "eve@example.com")
    page = open_customer(browser, pages, stack, ada["token"])
    watched = pages[-1]
    assert_strict_policy("/chat/", watched.policies.get("/chat/"))
    page.evaluate("""() => {
      const s = document.createElement("script");
      s.textContent = "window.__injected = true";
      document.body.append(s);
    }""")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("() => window.__injected === true") is False
    assert any(v.startswith("script-src") for v in watched.csp_violations()), watched.csp_violations()
    # Seen; now clear it, so that the fixture's own check passes on the rest.
    page.evaluate("() => { window.__cspViolations = []; }")
    watched.errors = [e for e in watched.errors if not e.startswith("CSP:")]


def test_an_empty_dashboard_and_every_empty_filter_say_what_they_show_and_how_to_get_back(browser, pages, empty_stack):
    stack = empty_stack
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)

    # No conversation at all: nothing to choose, so the page says how customers get here.
    none = agent.locator("#placeholder-none")
    expect(none).to_be_visible()
    expect(none).to_contain_text("No conversations yet")
    expect(none.locator("#chat-address")).to_have_text(f"{stack.url}/chat/")
    expect(agent.locator("#placeholder-choose")).to_be_hidden()
    expect(agent.get_by_text("Choose a conversation")).to_be_hidden()
    expect(agent.locator("#list-empty")).to_be_visible()

    # Even with nothing at all, a filter says what it would show and offers the way back.
    show = agent.get_by_label("Show")
    show.select_option("unread")
    expect(agent.locator("#filter-empty")).to_be_visible()
    expect(agent.locator("#filter-empty")).to_contain_text("No unread conversations.")
    agent.get_by_role("button", name="Show all conversations").click()
    expect(show).to_have_value("all")
    expect(agent.locator("#filter-empty")).to_be_hidden()

    # A customer writes: now there is something to choose.
    ada = stack.register_customer("Ada Filter", "ada.filter@example.com")
    customer_send(stack, ada["token"], "Where is my parcel?")
    row = conversation_row(agent, ada["customer_id"])
    expect(row.locator(".count")).to_have_text("1")
    expect(none).to_be_hidden()
    expect(agent.locator("#placeholder-choose")).to_be_visible()
    expect(agent.locator("#list-empty")).to_be_hidden()

    # The agent opens and answers it: nothing is unread and nobody is waiting.
    row.click()
    expect(row.locator(".count")).to_have_count(0)
    send(agent, "It is on its way.")
    expect(row.locator(".tag--awaiting")).to_have_count(0)

    for value, text in (("unread", "No unread conversations."), ("awaiting", "No conversations are waiting for a reply.")):
        show.select_option(value)
        expect(row).to_be_hidden()
        empty = agent.locator("#filter-empty")
        expect(empty).to_be_visible()
        expect(empty).to_contain_text(text)
        agent.get_by_role("button", name="Show all conversations").click()
        expect(show).to_have_value("all")
        expect(row).to_be_visible()
        expect(empty).to_be_hidden()
    save_screenshot(agent, "agent-filter-empty.png")


def test_the_message_being_edited_is_marked_in_the_timeline(browser, pages, stack):
    ada = stack.register_customer("Ada Editor", "ada.editor@example.com")
    customer = open_customer(browser, pages, stack, ada["token"])
    send(customer, "My order number is 1024")
    mine = customer.locator(".msg--mine", has_text="1024")
    expect(mine).to_have_attribute("data-state", "sent")
    expect(mine.locator(".msg__editing")).to_have_count(0)

    box = customer.locator("#composer-input")
    box.press("ArrowUp")
    expect(box).to_have_value("My order number is 1024")
    expect(mine).to_have_class(re.compile(r"\bmsg--editing\b"))
    expect(mine).to_have_attribute("aria-current", "true")
    expect(mine.locator(".msg__editing")).to_be_visible()
    expect(mine.locator(".msg__editing")).to_have_text("Editing")
    expect(customer.locator("#edit-banner")).to_be_visible()
    save_screenshot(customer, "customer-editing.png")

    # Escape cancels: the mark goes with it.
    box.press("Escape")
    expect(mine.locator(".msg__editing")).to_have_count(0)
    expect(mine).not_to_have_attribute("aria-current", "true")

    # Saving an edit clears it too.
    box.press("ArrowUp")
    expect(mine.locator(".msg__editing")).to_be_visible()
    box.fill("My order number is 1025")
    box.press("Enter")
    edited = customer.locator(".msg--mine", has_text="1025")
    expect(edited).to_contain_text("Edited")
    expect(customer.locator(".msg__editing")).to_have_count(0)
    expect(customer.locator(".msg--editing")).to_have_count(0)


def test_the_offline_banner_keeps_the_newest_message_in_view(browser, pages, stack):
    ada = stack.register_customer("Ada Scroller", "ada.scroller@example.com")
    agent_token = stack.agent_token()
    for i in range(1, 16):
        agent_send(stack, agent_token, ada["customer_id"], f"Earlier answer number {i}, long enough to take a line or two.")
    customer = open_customer(browser, pages, stack, ada["token"])
    expect(customer.locator(".msg")).to_have_count(15)
    # More than a screenful: the thread scrolls.
    assert customer.evaluate("(() => { const t = document.querySelector('#thread'); return t.scrollHeight > t.clientHeight; })()")
    customer.evaluate("window.parley.thread.scrollToBottom()")

    # The connection goes; the customer writes at once, before the banner.
    customer.context.set_offline(True)
    customer.evaluate("window.parley.socket.drop()")
    expect(customer.locator("#connection")).to_have_attribute("data-state", "offline")
    send(customer, "Hello? Is this still going through?")
    pending = customer.locator(".msg--mine", has_text="still going through")
    expect(pending).to_have_attribute("data-state", "sending")

    # The banner comes, pushing the thread down: the newest message stays in view.
    banner = customer.locator("#offline")
    expect(banner).to_be_visible()
    fully_in_view(customer, pending)
    save_screenshot(customer, "customer-offline.png")

    # And when it goes again.
    customer.context.set_offline(False)
    expect(customer.locator("#connection")).to_have_attribute("data-state", "live")
    expect(banner).to_be_hidden()
    expect(pending).not_to_have_attribute("data-state", "sending")
    fully_in_view(customer, pending)

    # Someone who scrolled up to read is left where they are.
    customer.locator("#thread").evaluate("(t) => { t.scrollTop = 0; }")
    customer.context.set_offline(True)
    customer.evaluate("window.parley.socket.drop()")
    expect(banner).to_be_visible()
    expect(customer.locator(".msg").first).to_be_in_viewport()
    customer.context.set_offline(False)
    expect(customer.locator("#connection")).to_have_attribute("data-state", "live")


def test_a_customer_attaches_a_picture_and_the_agent_sees_its_thumbnail(browser, pages, stack, tmp_path):
    from tests.support import files

    ada = stack.register_customer("Ada Attaches", "ada.attaches@example.com")
    customer = open_customer(browser, pages, stack, ada["token"])
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)
    picture = tmp_path / "broken-parcel.png"
    picture.write_bytes(files.png((64, 48)))

    customer.locator("#attach-input").set_input_files(str(picture))
    chip = customer.locator(".attachment-chip", has_text="broken-parcel.png")
    expect(chip).to_have_attribute("data-state", "ready")
    customer.locator("#send").click()  # a message of the picture alone
    mine = customer.locator(".msg--mine .msg__thumb")
    expect(mine).to_have_attribute("alt", "broken-parcel.png")
    # Loaded with the chat page's own cookie (no token in the URL): it has its pixels.
    customer.wait_for_function("(img) => img.complete && img.naturalWidth === 64", arg=mine.element_handle())
    expect(customer.locator(".attachment-chip")).to_have_count(0)

    row = conversation_row(agent, ada["customer_id"])
    expect(row.locator(".conv__preview")).to_contain_text("broken-parcel.png")
    row.click()
    thumb = agent.locator(".msg--theirs .msg__thumb")
    expect(thumb).to_have_attribute("alt", "broken-parcel.png")
    # The image really loaded (with the agent's session cookie): it has its pixels.
    agent.wait_for_function("(img) => img.complete && img.naturalWidth === 64", arg=thumb.element_handle())
    link = agent.locator(".msg--theirs .msg__attachment--image a")
    expect(link).to_have_attribute("href", re.compile(r"^/api/v1/attachments/[0-9a-f-]{36}/content$"))


def test_an_agent_searches_sees_the_match_highlighted_as_text_and_opens_its_conversation(browser, pages, stack):
    word = f"zebra{uuid.uuid4().hex[:8]}"
    grace = stack.register_customer("Grace Hopper <b>", "grace@example.com")
    body = f"<b>bold</b> <img src=x onerror=alert(1)> my {word} order never came"
    customer_send(stack, grace["token"], body)
    customer_send(stack, grace["token"], "An unrelated message")
    agent = log_in_agent(browser, pages, stack, stack.agent_username, stack.agent_password)
    expect(conversation_row(agent, grace["customer_id"])).to_be_visible()  # the index is as current as the list

    agent.get_by_label("Search messages and customers").fill(word)
    results = agent.locator("#search-results")
    expect(results.locator(".search-result")).to_have_count(1)
    expect(agent.locator("#conversation-list-area")).to_be_hidden()
    result = results.locator(".search-result")
    expect(result.locator("mark")).to_have_text([word])
    expect(result.locator(".search-result__text")).to_have_text(body)
    expect(result.locator(".conv__name")).to_have_text("Grace Hopper <b>")
    assert results.locator("b, img, script").count() == 0

    result.click()
    expect(agent).to_have_url(f"{stack.url}/agent/#{grace['customer_id']}")
    expect(agent.locator("#conversation-title")).to_have_text("Grace Hopper <b>")
    expect(agent.locator(".msg--theirs .msg__body").filter(has_text=word)).to_have_text(body)

    agent.locator("#search-input").press("Escape")
    expect(results).to_be_hidden()
    expect(conversation_row(agent, grace["customer_id"])).to_be_visible()


def test_a_customer_searches_their_conversation_and_the_match_comes_into_view(browser, pages, stack):
    word = f"walrus{uuid.uuid4().hex[:8]}"
    linus = stack.register_customer("Linus Pauling", "linus@example.com")
    customer_send(stack, linus["token"], f"Where is my {word} <i>order</i>?")
    for i in range(20):  # enough to push the first message out of view
        customer_send(stack, linus["token"], f"Filler message {i}")
    stranger = stack.register_customer("Rosalind Franklin", "rosalind@example.com")
    customer_send(stack, stranger["token"], f"My own {word} question")
    customer = open_customer(browser, pages, stack, linus["token"])
    expect(customer.locator(".msg")).to_have_count(21)

    customer.get_by_label("Search this conversation").first.click()
    customer.locator("#search-input").fill(word)
    results = customer.locator("#search-results .chat-search__result")
    expect(results).to_have_count(1)  # never the other customer's message
    expect(results.locator("mark")).to_have_text([word])
    expect(results.locator(".search-result__text")).to_have_text(f"You: Where is my {word} <i>order</i>?")
    assert customer.locator("#search-results i").count() == 0

    results.click()
    found = customer.locator(".msg").filter(has_text=word)
    expect(found).to_be_in_viewport()
    expect(customer.locator("#search-results")).to_be_hidden()


@pytest.fixture(scope="module")
def tight_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A server whose customers may send two messages a minute."""
    s, drop = start_stack(tmp_path_factory.mktemp("tight-stack"), extra_env={"PARLEY_CUSTOMER_SENDS_PER_MINUTE": "2"})
    yield s
    stop_stack(s)
    drop()


def test_a_send_past_the_send_budget_says_it_waits_and_goes_out_by_itself(browser, pages, tight_stack):
    ada = tight_stack.register_customer("Ada Fast", "ada.fast@example.com")
    customer = open_customer(browser, pages, tight_stack, ada["token"])
    # The budget is counted per minute of the clock (accounts.ratelimit): three sends that straddle a
    # minute's turn would all be taken, and a third refused in its last seconds would wait a second at
    # most. Start them at least ten seconds before a minute turns, so the third waits that long or more.
    into = time.time() % 60
    if into > 50:
        time.sleep(60 - into + 0.5)
    for text in ("First", "Second", "Third, too fast"):
        send(customer, text)
    for text in ("First", "Second"):
        expect(customer.locator(".msg--mine", has_text=text)).to_have_attribute("data-state", "sent")
    third = customer.locator(".msg--mine", has_text="Third, too fast")
    # Not a bare "Sending…": it says why, and when it goes.
    expect(third).to_have_attribute("data-state", "waiting")
    expect(third.locator(".msg__status")).to_have_text("Waiting to send")
    expect(third.locator(".msg__wait")).to_contain_text("You are sending faster than we can take messages")
    expect(third.locator(".msg__wait")).to_contain_text(re.compile(r"goes out by itself in \d+ s"))
    # The budget's minute ends, and it goes without anyone doing anything: once.
    expect(third).to_have_attribute("data-state", "sent", timeout=90_000)
    expect(third.locator(".msg__wait")).to_have_count(0)

    # "Sent" is the server's ack of the append; the list is the read model, a batch of the pipeline later.
    def stored() -> list[str]:
        status, page = http("GET", f"{tight_stack.url}/api/v1/messages?after=0", token=ada["token"])
        assert status == 200, page
        return [m["body"] for m in page["messages"]]

    wait_until(lambda: len(stored()) >= 3, "the third message never reached the list")
    assert stored() == ["First", "Second", "Third, too fast"]


def test_an_erased_customers_pages_drop_the_conversation_say_so_and_never_reconnect(browser, pages, stack):
    ada = stack.register_customer("Ada Erased", "ada.erased@example.com")
    agent_token = stack.agent_token()
    agent_send(stack, agent_token, ada["customer_id"], "Your passport number is on file")
    live = open_customer(browser, pages, stack, ada["token"])
    away = open_customer(browser, pages, stack, ada["token"])
    for page in (live, away):
        expect(page.locator(".msg", has_text="passport number")).to_have_count(1)
    live.locator("#composer-input").fill("A draft about my passport")
    # An agent has the conversation open, with a reply drafted.
    desk = log_in_agent(browser, pages, stack, "erin", create_agent(stack, "erin", "Erin"))
    conversation_row(desk, ada["customer_id"]).click()
    expect(desk.locator("#thread .msg", has_text="passport number")).to_have_count(1)
    desk.locator("#composer-input").fill("About your passport, Ada")
    # The second page loses its network with a message still to send (kept in the browser meanwhile).
    away.context.set_offline(True)
    away.evaluate("window.parley.socket.drop()")
    expect(away.locator("#connection")).to_have_attribute("data-state", "offline")
    send(away, "Unsent words about my passport")
    outbox = f"parley.outbox.customer.{ada['customer_id']}"
    assert away.evaluate(f"localStorage.getItem({outbox!r})") is not None
    opened: dict[str, list[str]] = {"live": [], "away": []}
    live.on("websocket", lambda ws: opened["live"].append(ws.url))
    away.on("websocket", lambda ws: opened["away"].append(ws.url))

    status, body = http("POST", f"{stack.url}/api/v1/customers/{ada['customer_id']}/erase", token=agent_token)
    assert status == 202 and body["erased"] is True
    # The open page gets the frame, then the close (4410).
    expect(live.locator("#erased")).to_be_visible()
    # The dashboard forgets them at once: their row, the open thread, the draft to them.
    expect(conversation_row(desk, ada["customer_id"])).to_have_count(0)
    expect(desk.locator("#open")).to_be_hidden()
    expect(desk.locator("#placeholder")).to_be_visible()
    desk_text = desk.locator("body").inner_text()
    assert "passport" not in desk_text and "Ada Erased" not in desk_text, desk_text
    desk.reload()
    expect(desk.locator("#connection")).to_have_attribute("data-state", "live")
    expect(conversation_row(desk, ada["customer_id"])).to_have_count(0)
    # The page that was away reconnects when the network is back, and is refused (4410).
    away.context.set_offline(False)
    expect(away.locator("#erased")).to_be_visible()
    for page in (live, away):
        expect(page.locator("#erased")).to_contain_text("This conversation was deleted")
        expect(page.locator(".msg")).to_have_count(0)
        expect(page.locator("#empty")).to_be_hidden()
        expect(page.locator("#connection")).to_have_attribute("data-state", "closed")
        expect(page.locator("#composer-input")).to_be_disabled()
        expect(page.locator("#composer-input")).to_have_value("")
        expect(page.locator("#ended")).to_be_hidden()
        expect(page.locator("#problem")).to_be_hidden()
        assert page.evaluate(f"localStorage.getItem({outbox!r})") is None
        text = page.locator("body").inner_text()
        assert "passport" not in text and "Ada Erased" not in text and "ada.erased@" not in text, text

    # Final: no reconnect, not after a backoff, not when the tab or the network comes back.
    for attempts in opened.values():
        attempts.clear()
    for page in (live, away):
        page.evaluate(HIDE_TAB)
        page.evaluate(SHOW_TAB)
    away.context.set_offline(True)
    away.context.set_offline(False)
    live.wait_for_timeout(3000)
    assert opened == {"live": [], "away": []}, opened
    for page in (live, away):
        expect(page.locator("#connection")).to_have_attribute("data-state", "closed")
    # The unsent message never went out (it would be refused: 410).
    status, listed = http("GET", f"{stack.url}/api/v1/messages?after=0", token=ada["token"])
    assert status == 200 and listed["messages"] == [], listed
