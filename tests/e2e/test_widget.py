"""The website widget in a real browser (Debian's Chromium, driven by
Playwright) against a real server, embedded by a host site on another
origin (127.0.0.2) with a strict Content-Security-Policy of its own.

Proves what issue 26 asks: the launcher appears; an agent's reply raises its
count without opening; opening shows the conversation and lowers the count
to 0 on the launcher and in the badge API; a message written in the widget
reaches the agent; an origin outside PARLEY_WIDGET_ORIGINS cannot show the
conversation; `logout` then a reload shows the pre-chat form, also in a
window the widget opened; `shutdown` and `boot` again; the host
page's own styles and globals are unchanged; all of it with third-party
cookies (and so third-party storage) blocked as well as with partitioned
storage; a phone gets the chat full-screen; keyboard and bad input; and
"Leave" in a window the widget opened, on a phone and a desktop, signs
that window out for good (its old cookie signs nobody in any more)."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import ROOT, Stack, http, start_stack, stop_stack
from tests.e2e.layout import assert_laid_out
from tests.e2e.test_ui import (
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    RECORD_CSP_VIOLATIONS,
    Watched,
    agent_send,
    assert_strict_policy,
    chromium_path,
    conversation_row,
    log_in_agent,
    save_screenshot,
    send,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
expect.set_options(timeout=15_000)

HOST_ADDRESS = "127.0.0.2"  # the host site: another origin (and site) than Parley's 127.0.0.1
STRANGER_ADDRESS = "127.0.0.3"  # a site that is not in PARLEY_WIDGET_ORIGINS
# This Chromium blocks third-party cookies, and with them a third-party
# frame's storage, by default; this turns that off, leaving the storage
# partitioning every browser now does (the frame's storage is its own per host site).
PARTITIONED = ["--disable-features=TrackingProtection3pcd"]
BLOCKED = ["--disable-third-party-cookies"]
WIDGET_BUDGET_GZIP = 15 * 1024
EXAMPLE = ROOT / "examples" / "widget"
WIDGET_COLOR = ("#2f4f3a", "rgb(47, 79, 58)")  # the example shop's green, as set and as computed
WIDGET_NAME = "Acme Outdoor help"
WIDGET_GREETING = "Welcome to Acme Outdoor! Ask us about gear and orders."  # not the default: it must come from the setting

HOST_CSS = """
body { margin: 0; font-family: Georgia, serif; background: rgb(250, 240, 230); color: rgb(20, 20, 60); }
#host-button { background: rgb(0, 0, 255); color: white; width: 300px; font-size: 22px; }
/* Hostile rules: none of them may reach the widget. */
button { border-radius: 0 !important; }
* { letter-spacing: 3px !important; }
iframe { display: none !important; }
"""

# The host page's own script: it records what the widget tells it, and what
# was on `window` before, so a test can tell what the widget added.
HOST_JS = """
const before = Object.getOwnPropertyNames(window);
window.hostLog = { before, unread: [], ready: 0, messages: [], errors: [] };
window.Parley = window.Parley || function () { (Parley.q = Parley.q || []).push(arguments); };
const params = new URLSearchParams(location.search);
if (params.get("token")) Parley("boot", { token: params.get("token"), locale: "en-GB" });
Parley("on", "unread", (n) => hostLog.unread.push(n));
Parley("on", "ready", () => { hostLog.ready += 1; });
Parley("on", "message", (m) => hostLog.messages.push(m));
Parley("on", "error", (e) => hostLog.errors.push(e));
document.getElementById("host-button").addEventListener("click", () => Parley("open"));
"""

# A frame of a site that is not allowed, inside an allowed host page: it
# tries to talk to the widget's frame and to the host page as if it were Parley.
STRANGER_JS = """
const forged = [
  { parley: "widget", v: 1, type: "logout" },
  { parley: "widget", v: 1, type: "identify", token: "pc.forged" },
  { parley: "widget", v: 1, type: "unread", count: 42 },
  { parley: "widget", v: 1, type: "close" },
];
for (let i = 0; i < parent.frames.length; i++) {
  for (const m of forged) { try { parent.frames[i].postMessage(m, "*"); } catch (e) {} }
}
for (const m of forged) parent.postMessage(m, "*");
document.body.dataset.done = "yes";
"""


def host_page(parley: str, *, twice: bool = False, widget: bool = True, stranger: str = "") -> str:
    scripts = f'<script src="{parley}/widget.js" async></script>' * ((2 if twice else 1) if widget else 0)
    nested = f'<iframe id="stranger" title="stranger" src="{stranger}/stranger.html"></iframe>' if stranger else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host shop</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/host.css"></head><body>'
        '<header id="host-header">Host shop</header><button id="host-button" type="button">Help</button>'
        f'{nested}<script src="/host.js"></script>{scripts}</body></html>'
    )


class HostSite:
    """A host site on a loopback address of its own, serving pages that embed
    the widget from Parley, under a strict policy: scripts from itself and
    Parley, frames and connections to Parley only, no inline anything."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.parley = ""
        self.stranger = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path == "/host.css":
                    return self.reply(HOST_CSS, "text/css")
                if url.path == "/host.js":
                    return self.reply(HOST_JS, "text/javascript")
                if url.path == "/stranger.js":
                    return self.reply(STRANGER_JS, "text/javascript")
                if url.path == "/stranger.html":
                    return self.reply('<!doctype html><body><script src="/stranger.js"></script></body>', "text/html")
                if url.path.startswith("/example/"):
                    # The example host site of docs/widget.md, pointed at this server instead of `make run`'s.
                    name = url.path.removeprefix("/example/") or "index.html"
                    media = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
                    file = EXAMPLE / name
                    if "/" in name or not file.is_file():
                        self.send_error(404)
                        return None
                    body = file.read_text().replace("http://127.0.0.1:8000", site.parley)
                    return self.reply(body, media[file.suffix[1:]], policy=False)
                if url.path in ("/", "/bare"):
                    page = host_page(site.parley, twice="twice" in query, widget=url.path == "/",
                                     stranger=site.stranger if "stranger" in query else "")
                    return self.reply(page, "text/html")
                self.send_error(404)
                return None

            def reply(self, body: str, media: str, policy: bool = True) -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", f"{media}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                if policy:  # (the example page brings its own, in a <meta>)
                    self.send_header("Content-Security-Policy", "; ".join([
                        "default-src 'none'", f"script-src 'self' {site.parley}", f"frame-src {site.parley} {site.stranger}",
                        f"connect-src {site.parley}", "style-src 'self'", "img-src 'self'", "base-uri 'none'",
                    ]))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://{self.address}:{self.server.server_address[1]}"

    def url(self, path: str = "/", **query: str) -> str:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{self.origin}{path}{'?' + qs if qs else ''}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def host_site() -> Iterator[HostSite]:
    site = HostSite(HOST_ADDRESS)
    yield site
    site.close()


@pytest.fixture(scope="module")
def stranger_site() -> Iterator[HostSite]:
    site = HostSite(STRANGER_ADDRESS)
    yield site
    site.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, host_site: HostSite, stranger_site: HostSite) -> Iterator[Stack]:
    """Parley with the host site (only) allowed to embed the widget, in the host's colour, name and greeting."""
    s, drop = start_stack(tmp_path_factory.mktemp("widget"), extra_env={
        "PARLEY_WIDGET_ORIGINS": host_site.origin, "PARLEY_WIDGET_COLOR": WIDGET_COLOR[0], "PARLEY_WIDGET_NAME": WIDGET_NAME,
        "PARLEY_WIDGET_GREETING": WIDGET_GREETING,
    })
    for site in (host_site, stranger_site):
        site.parley = s.url
        site.stranger = stranger_site.origin
    yield s
    stop_stack(s)
    drop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    if chromium_path() is None:
        pytest.fail("Chromium is required for the browser tests (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        yield p


def _launch(p: Any, extra: list[str]) -> Iterator[Any]:
    b = p.chromium.launch(executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *extra])
    yield b
    b.close()


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """Chromium with third-party cookies allowed: the widget's frame has its partitioned storage."""
    yield from _launch(playwright, PARTITIONED)


@pytest.fixture(scope="module")
def blocking_browser(playwright: Any) -> Iterator[Any]:
    """Chromium blocking third-party cookies (and so the frame's storage), as private windows and Safari do."""
    yield from _launch(playwright, BLOCKED)


class Host:
    """A host page with the widget, and what it shows and records."""

    def __init__(self, watched: Watched) -> None:
        self.watched = watched
        self.page = watched.page
        self.launcher = self.page.get_by_role("button", name="Open support chat")
        self.count = self.page.locator("parley-widget .count")
        self.panel = self.page.locator("parley-widget .panel")
        self.frame = self.page.frame_locator("parley-widget iframe")

    def log(self) -> dict[str, Any]:
        return dict(self.page.evaluate("window.hostLog"))

    def frame_eval(self, expression: str) -> Any:
        frame = next(f for f in self.page.frames if f.url.split("?")[0].endswith("/widget/frame/"))
        return frame.evaluate(expression)

    def wait_log(self, condition: str) -> None:
        """Wait until the host page's log meets ``condition`` (JavaScript over ``log``). The frame's
        messages reach the host from another process: seeing something in the frame does not mean
        the host has heard of it yet."""
        self.page.wait_for_function(f"() => {{ const log = window.hostLog; return Boolean(log && ({condition})); }}")

    def wait_ready(self) -> None:
        self.page.wait_for_function("() => window.hostLog && window.hostLog.ready > 0")


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    opened: list[Host] = []
    yield opened
    for host in opened:
        frames = [f for f in host.page.frames if "/widget/frame/" in f.url and not f.is_detached()]
        violations = host.watched.csp_violations() + [
            v for f in frames for v in f.evaluate("() => window.__cspViolations || []")
        ]
        host.page.context.close()
        assert host.watched.dialogs == [], host.watched.dialogs
        assert host.watched.errors == [], f"script errors: {host.watched.errors}"
        assert violations == [], f"Content-Security-Policy violations: {violations}"


def open_host(browser: Any, hosts: list[Host], url: str, *, viewport: dict[str, int] = DESKTOP, phone: bool = False) -> Host:
    context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    watched = Watched(context.new_page())
    host = Host(watched)
    hosts.append(host)
    host.page.goto(url)
    return host


def badge(stack: Stack, token: str) -> int:
    status, body = http("GET", f"{stack.url}/api/v1/badge", token=token)
    assert status == 200, body
    return int(body["unread"])


def customer_messages(stack: Stack, agent_token: str, customer_id: str) -> list[dict[str, Any]]:
    status, body = http("GET", f"{stack.url}/api/v1/conversations/{customer_id}/messages?after=0", token=agent_token)
    assert status == 200, body
    return list(body["messages"])


def wait_for_console(page: Any, console: list[str], needle: str, what: str, timeout: float = 15) -> None:
    """Wait for a console line holding ``needle``. Playwright's sync API hands over
    events only while the test calls into it, so this waits in the page's time
    (a plain sleep would never see a line logged after the last call)."""
    deadline = time.monotonic() + timeout
    while not any(needle in line for line in console):
        assert time.monotonic() < deadline, f"{what}: {console}"
        page.wait_for_timeout(100)


def type_into(box: Any, text: str, tries: int = 3) -> None:
    """Click into a box in the frame and fill it, as a person would, then check it holds the text.
    A fill alone focuses the box from script and sends the text to whichever frame the browser has
    focused: under load the widget's cross-origin frame was once not that one yet, and the text went
    nowhere (the failure showed only later, as an empty message or search). The click puts the
    browser's focus in the frame the way a person's does. Even after a click, a loaded machine once
    left the box empty (the browser had not moved its focus into the frame's process yet), so a box
    still empty is typed into again, as a person would; the last check fails if it never took."""
    for _ in range(tries - 1):
        box.click()
        box.fill(text)
        try:
            expect(box).to_have_value(text, timeout=5000)
            return
        except AssertionError:
            continue  # the text went to no box: click and type again
    box.click()
    box.fill(text)
    expect(box).to_have_value(text)


# -- tests ------------------------------------------------------------------------------------


def test_an_agent_reply_raises_the_launcher_count_and_opening_the_chat_reads_it(browser, hosts, stack, host_site):
    ada = stack.register_customer("Ada Widget", "ada.widget@example.com")
    agent_token = stack.agent_token()
    host = open_host(browser, hosts, host_site.url(token=ada["token"]))

    # The launcher appears in the corner, with no count.
    expect(host.launcher).to_be_visible()
    host.wait_ready()
    expect(host.count).to_be_hidden()
    assert host.panel.is_hidden()

    # An agent replies: the launcher counts it, the chat still closed.
    started = time.monotonic()
    agent_send(stack, agent_token, ada["customer_id"], "Hello Ada, your parcel left the warehouse today.")
    expect(host.count).to_have_text("1")
    reached = time.monotonic() - started
    assert host.panel.is_hidden()
    assert badge(stack, ada["token"]) == 1
    assert host.log()["unread"] == [1]
    assert [m["body"] for m in host.log()["messages"]] == ["Hello Ada, your parcel left the warehouse today."]
    assert host.log()["messages"][0]["sender"]["kind"] == "agent"
    print(f"launcher count 1 after {reached:.2f}s (API call, log, pipeline, socket, frame, launcher)")

    # Opening shows the conversation and reads it: the count goes, on the launcher and on the server.
    host.launcher.click()
    expect(host.panel).to_be_visible()
    expect(host.frame.locator(".msg--theirs", has_text="parcel left the warehouse")).to_be_visible()
    expect(host.count).to_be_hidden()
    wait_until(lambda: badge(stack, ada["token"]) == 0, "the badge API still counts the reply after it was read")
    assert host.log()["unread"] == [1, 0]
    expect(host.launcher).to_have_attribute("aria-expanded", "true")

    # The agent resolves the conversation: the frame asks for a rating, and the one given there is stored.
    rating = host.frame.locator("#rating")
    expect(rating).to_be_hidden()
    status, body = http("POST", f"{stack.url}/api/v1/conversations/{ada['customer_id']}/status", {"status": "resolved"},
                        token=agent_token)
    assert status == 200, body
    expect(rating.get_by_role("group", name="How did we do?")).to_be_visible()
    rating.get_by_role("radio", name=re.compile(r"^4 ")).check()
    type_into(rating.locator("#rating-comment"), "Quick answer, thanks")
    rating.get_by_role("button", name="Send rating").click()
    expect(rating.locator("#rating-status")).to_have_text("Thank you: you rated us 4 of 5. You can change it.")

    def stored() -> Any:
        status, body = http("GET", f"{stack.url}/api/v1/conversations/{ada['customer_id']}", token=agent_token)
        assert status == 200, body
        return body["conversation"]["rating"]

    wait_until(lambda: stored() is not None, "the rating given in the widget never reached the conversation")
    assert {k: stored()[k] for k in ("score", "comment")} == {"score": 4, "comment": "Quick answer, thanks"}


def test_a_message_written_in_the_widget_reaches_the_agent_and_reading_anywhere_lowers_the_count(
    browser, hosts, stack, host_site
):
    grace = stack.register_customer("Grace Widget", "grace.widget@example.com")
    agent_token = stack.agent_token()
    host = open_host(browser, hosts, host_site.url(token=grace["token"]))
    agent = log_in_agent(browser, [], stack, stack.agent_username, stack.agent_password)
    try:
        host.launcher.click()
        box = host.frame.locator("#composer-input")
        expect(box).to_be_focused()  # focus moved into the chat
        type_into(box, "Can I change my delivery address?")
        box.press("Enter")
        expect(host.frame.locator(".msg--mine", has_text="delivery address")).to_have_attribute("data-state", "sent")
        row = conversation_row(agent, grace["customer_id"])
        expect(row).to_contain_text("Grace Widget")
        expect(row.locator(".count")).to_have_text("1")
        bodies = [m["body"] for m in customer_messages(stack, agent_token, grace["customer_id"])]
        assert bodies == ["Can I change my delivery address?"]
        host.wait_log("log.messages.length > 0")
        assert host.log()["messages"][-1]["sender"]["kind"] == "customer"

        # Closed again, an agent answers; the customer reads it on another device: the launcher follows.
        host.page.keyboard.press("Escape")
        expect(host.panel).to_be_hidden()
        expect(host.launcher).to_be_focused()  # focus back on the launcher
        reply = agent_send(stack, agent_token, grace["customer_id"], "Yes: which address?")
        expect(host.count).to_have_text("1")
        status, _ = http("POST", f"{stack.url}/api/v1/messages/{reply['message']['message_id']}/read", token=grace["token"])
        assert status == 200
        expect(host.count).to_be_hidden()
        assert badge(stack, grace["token"]) == 0
    finally:
        agent.context.close()


def _shows_parley(frame: Any) -> bool:
    """Whether a frame renders Parley's widget app (a refused frame cannot)."""
    try:
        return bool(frame.evaluate("() => document.getElementById('app') !== null"))
    except Exception:  # an error page or a detached frame answers nothing
        return False


def test_an_origin_outside_the_allowed_ones_cannot_show_the_conversation(browser, stack, stranger_site):
    ada = stack.register_customer("Ada Elsewhere", "ada.elsewhere@example.com")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    try:
        page.goto(stranger_site.url(token=ada["token"]))
        # The script sees it is not allowed here and says so; no launcher.
        page.wait_for_function("() => window.Parley && window.Parley.version === 1")
        wait_for_console(page, console, "not in PARLEY_WIDGET_ORIGINS", "no console error")
        expect(page.locator("parley-widget")).to_be_hidden()
        # And whatever a page does, the browser refuses to render Parley's frame in it.
        page.evaluate(f"""() => {{
          const f = document.createElement("iframe");
          f.id = "forced"; f.src = "{stack.url}/widget/frame/"; document.body.append(f);
        }}""")
        # The browser reports the refusal; what it leaves in the frame differs
        # between versions (an error page at chrome-error://, or the address
        # with an empty document), so the test asks what matters: no frame on
        # this page holds Parley's app.
        wait_for_console(page, console, "frame-ancestors", "the frame was not refused")
        forced = page.frame_locator("#forced")
        assert forced.locator("#app").count() == 0
        assert not any(_shows_parley(f) for f in page.frames if f is not page.main_frame)
        assert page.evaluate("window.hostLog.ready") == 0
    finally:
        context.close()


def test_a_visitor_signs_up_keeps_the_chat_across_reloads_and_logout_brings_back_the_form(browser, hosts, stack, host_site):
    host = open_host(browser, hosts, host_site.url())
    host.wait_ready()
    assert host.frame_eval("(() => { try { localStorage.setItem('p', '1'); return true; } catch { return false; } })()")
    host.launcher.click()
    frame = host.frame
    expect(frame.get_by_label("Your name")).to_be_focused()
    type_into(frame.get_by_label("Your name"), "Vera Visitor")
    type_into(frame.get_by_label("Email"), "not an address")
    frame.get_by_role("button", name="Start chatting").click()
    expect(frame.locator("#w-email-error")).to_have_text("Please give an email address we can answer at.")
    type_into(frame.get_by_label("Email"), "vera.widget@example.com")
    frame.get_by_role("button", name="Start chatting").click()
    expect(frame.locator("#composer-input")).to_be_focused()
    type_into(frame.locator("#composer-input"), "Do you ship to Norway?")
    frame.locator("#composer-input").press("Enter")
    expect(frame.locator(".msg--mine", has_text="Norway")).to_have_attribute("data-state", "sent")
    expect(frame.locator("#w-storage-note")).to_be_hidden()  # this browser lets the frame remember

    # A reload of the host page: the frame's own (partitioned) storage remembers the visitor.
    host.page.reload()
    host.wait_ready()
    host.launcher.click()
    expect(frame.locator(".msg--mine", has_text="Norway")).to_have_count(1)
    expect(frame.locator("#w-me-name")).to_have_text("Vera Visitor")

    # logout forgets the visitor in this browser: after a reload, the pre-chat form.
    host.page.evaluate("Parley('logout')")
    expect(frame.get_by_label("Your name")).to_be_visible()
    host.page.reload()
    host.wait_ready()
    host.launcher.click()
    expect(frame.get_by_label("Your name")).to_be_visible()
    expect(frame.locator(".msg")).to_have_count(0)
    assert host.frame_eval("Object.keys(localStorage).filter((k) => k.startsWith('parley.'))") == []


def test_an_erased_visitor_sees_the_conversation_deleted_and_the_host_page_hears_of_it(browser, hosts, stack, host_site):
    agent_token = stack.agent_token()
    host = open_host(browser, hosts, host_site.url())
    host.wait_ready()
    host.launcher.click()
    frame = host.frame
    type_into(frame.get_by_label("Your name"), "Erin Erased")
    type_into(frame.get_by_label("Email"), "erin.widget@example.com")
    frame.get_by_role("button", name="Start chatting").click()
    type_into(frame.locator("#composer-input"), "Please delete my data")
    frame.locator("#composer-input").press("Enter")
    expect(frame.locator(".msg--mine", has_text="delete my data")).to_have_attribute("data-state", "sent")
    customer_id = host.frame_eval("window.parley.thread.me.id")

    status, body = http("POST", f"{stack.url}/api/v1/customers/{customer_id}/erase", token=agent_token)
    assert status == 202 and body["erased"] is True
    # The frame, then the close (4410): the chat says so, keeps nothing, and stops.
    expect(frame.get_by_role("heading", name="This conversation was deleted")).to_be_visible()
    expect(frame.locator(".msg")).to_have_count(0)
    host.wait_log("log.errors.length > 0")
    assert [e["code"] for e in host.log()["errors"]] == ["erased"]
    expect(host.count).to_be_hidden()
    assert host.frame_eval("window.parley.socket.state") == "closed"
    assert host.frame_eval("Object.keys(localStorage).filter((k) => k.startsWith('parley.'))") == []

    # The host page loads again: a new visitor's pre-chat form, nothing of Erin's.
    host.page.reload()
    host.wait_ready()
    host.launcher.click()
    expect(frame.get_by_label("Your name")).to_be_visible()
    expect(frame.locator(".msg")).to_have_count(0)


def test_a_single_page_app_identifies_after_its_login_and_logs_out_on_sign_out(browser, hosts, stack, host_site):
    ada = stack.register_customer("Ada Spa", "ada.spa@example.com")
    agent_token = stack.agent_token()
    agent_send(stack, agent_token, ada["customer_id"], "Your refund is on its way.")
    host = open_host(browser, hosts, host_site.url())
    host.wait_ready()
    expect(host.count).to_be_hidden()

    # The host's own login: identify with the token its server got. The count follows at once.
    host.page.evaluate(f"Parley('identify', {{token: {json.dumps(ada['token'])}}})")
    expect(host.count).to_have_text("1")
    host.launcher.click()
    expect(host.frame.locator(".msg--theirs", has_text="refund is on its way")).to_be_visible()
    expect(host.count).to_be_hidden()
    # A window of Parley's own, signed in by "Open in a new window" with a cookie of Parley's site.
    with host.page.context.expect_page() as popup_info:
        host.frame.locator("#w-menu summary").click()
        host.frame.get_by_role("button", name="Open in a new window").click()
    popup = popup_info.value
    expect(popup.locator(".msg--theirs", has_text="refund is on its way")).to_be_visible()
    expect(popup.locator("#connection")).to_have_attribute("data-state", "live")

    # Sign-out: logout. The conversation is gone from this browser, now and after a reload.
    host.page.evaluate("Parley('logout')")
    expect(host.frame.get_by_label("Your name")).to_be_visible()
    expect(host.frame.locator(".msg")).to_have_count(0)
    host.page.reload()
    host.wait_ready()
    host.launcher.click()
    expect(host.frame.get_by_label("Your name")).to_be_visible()
    # Also from the window it opened: its connection is refused, and reloaded it is the pre-chat form.
    expect(popup.locator("#composer-input")).to_be_disabled()
    popup.reload()
    expect(popup).to_have_url(f"{stack.url}/chat/start/")
    expect(popup.get_by_label("Your name")).to_be_visible()
    expect(popup.locator(".msg")).to_have_count(0)
    popup.close()


def test_the_host_pages_styles_and_globals_are_unchanged(browser, hosts, stack, host_site):
    ada = stack.register_customer("Ada Styles", "ada.styles@example.com")
    bare = open_host(browser, hosts, host_site.url("/bare"))
    bare.page.wait_for_function("() => window.hostLog")
    host = open_host(browser, hosts, host_site.url(token=ada["token"]))
    host.wait_ready()

    # Globals: the widget added window.Parley and nothing else (hostLog is the page's own).
    added = host.page.evaluate("Object.getOwnPropertyNames(window).filter((n) => !window.hostLog.before.includes(n))")
    assert sorted(added) == ["Parley", "hostLog"], added

    # The host's styles: the same with and without the widget, and no stylesheet added to the document.
    probe = """() => {
      const s = (sel) => { const c = getComputedStyle(document.querySelector(sel));
        return [c.backgroundColor, c.color, c.fontFamily, c.fontSize, c.width, c.letterSpacing, c.borderRadius]; };
      return { body: s("body"), button: s("#host-button"), header: s("#host-header"),
               sheets: document.styleSheets.length, adopted: document.adoptedStyleSheets.length,
               styles: document.querySelectorAll("style").length };
    }"""
    assert host.page.evaluate(probe) == bare.page.evaluate(probe)

    # The other way: the host's hostile rules (iframe hidden, spaced letters, square buttons) reach nothing of the widget.
    launcher = host.launcher.evaluate("""(b) => { const c = getComputedStyle(b);
      return [c.backgroundColor, c.width, c.borderTopLeftRadius, c.letterSpacing]; }""")
    assert launcher == [WIDGET_COLOR[1], "56px", "50%", "normal"], launcher
    host.launcher.click()
    expect(host.panel.locator("iframe")).to_be_visible()
    expect(host.frame.locator("#composer-input")).to_be_visible()


def test_with_third_party_cookies_blocked_the_widget_still_works(blocking_browser, hosts, stack, host_site):
    ada = stack.register_customer("Ada Private", "ada.private@example.com")
    agent_token = stack.agent_token()
    host = open_host(blocking_browser, hosts, host_site.url(token=ada["token"]))
    host.wait_ready()
    # This browser gives the frame no storage at all (and no cookie): the token lives in memory only.
    assert host.frame_eval("(() => { try { localStorage.length; return true; } catch { return false; } })()") is False
    assert host.frame_eval("document.cookie") == ""
    agent_send(stack, agent_token, ada["customer_id"], "Blocked cookies are no problem.")
    expect(host.count).to_have_text("1")
    host.launcher.click()
    expect(host.frame.locator(".msg--theirs", has_text="no problem")).to_be_visible()
    expect(host.count).to_be_hidden()
    wait_until(lambda: badge(stack, ada["token"]) == 0, "not read on the server")
    type_into(host.frame.locator("#composer-input"), "Good to know!")
    host.frame.locator("#composer-input").press("Enter")
    wait_until(lambda: any(m["body"] == "Good to know!" for m in customer_messages(stack, agent_token, ada["customer_id"])),
               "the customer's message did not reach the server")

    # A visitor without a host token: the form works, the chat lasts while the page is open, and says so.
    visitor = open_host(blocking_browser, hosts, host_site.url())
    visitor.wait_ready()
    visitor.launcher.click()
    type_into(visitor.frame.get_by_label("Your name"), "Pia Private")
    type_into(visitor.frame.get_by_label("Email"), "pia@example.com")
    visitor.frame.get_by_role("button", name="Start chatting").click()
    expect(visitor.frame.locator("#w-storage-note")).to_be_visible()
    type_into(visitor.frame.locator("#composer-input"), "Hello from a private window")
    visitor.frame.locator("#composer-input").press("Enter")
    expect(visitor.frame.locator(".msg--mine", has_text="private window")).to_have_attribute("data-state", "sent")


def test_on_a_phone_the_chat_opens_full_screen_and_closes_back_to_the_launcher(browser, hosts, stack, host_site):
    ada = stack.register_customer("Ada Phone", "ada.phone@example.com")
    host = open_host(browser, hosts, host_site.url(token=ada["token"]), viewport=PHONE, phone=True)
    host.wait_ready()
    box = host.launcher.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"] and box["y"] + box["height"] <= PHONE["height"]
    host.launcher.click()
    expect(host.panel).to_be_visible()
    panel = host.panel.bounding_box()
    assert panel == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}, panel
    expect(host.launcher).to_be_hidden()
    expect(host.frame.locator("#composer-input")).to_be_visible()
    save_screenshot(host.page, "widget-phone.png")
    host.frame.get_by_role("button", name="Close support chat").click()
    expect(host.panel).to_be_hidden()
    expect(host.launcher).to_be_visible()


def test_the_keyboard_opens_and_closes_it_and_the_settings_show(browser, hosts, stack, host_site):
    ada = stack.register_customer("Ada Keys", "ada.keys@example.com")
    host = open_host(browser, hosts, host_site.url(token=ada["token"]))
    host.wait_ready()
    host.launcher.focus()
    host.page.keyboard.press("Enter")
    expect(host.frame.locator("#composer-input")).to_be_focused()
    # The settings: the name in the header, the colour on the launcher and the header, the reply time.
    expect(host.frame.locator("#w-title")).to_have_text(WIDGET_NAME)
    expect(host.frame.locator(".widget-header")).to_have_css("background-color", WIDGET_COLOR[1])
    expect(host.launcher).to_have_css("background-color", WIDGET_COLOR[1])
    expect(host.frame.locator("#w-availability")).to_contain_text("We usually reply within a few minutes.")
    expect(host.frame.locator("#empty")).to_contain_text(WIDGET_GREETING)
    host.page.keyboard.press("Escape")
    expect(host.panel).to_be_hidden()
    expect(host.launcher).to_be_focused()
    # The host's own button opens it through the API.
    host.page.locator("#host-button").click()
    expect(host.panel).to_be_visible()
    host.page.evaluate("Parley('close')")
    expect(host.panel).to_be_hidden()

    # shutdown takes the launcher and the chat's frame off the page; boot brings them back, ready again.
    ready = host.log()["ready"]
    host.page.evaluate("Parley('shutdown')")
    expect(host.page.locator("parley-widget")).to_have_count(0)
    expect(host.launcher).to_have_count(0)
    # The frame's element is gone at once; Playwright hears of the frame's detaching a moment later.
    host.page.wait_for_function("() => !document.querySelector('parley-widget')")
    for _ in range(50):
        if not [f for f in host.page.frames if "/widget/frame/" in f.url and not f.is_detached()]:
            break
        host.page.wait_for_timeout(100)
    assert not [f for f in host.page.frames if "/widget/frame/" in f.url and not f.is_detached()]
    host.page.evaluate(f"Parley('boot', {{token: {json.dumps(ada['token'])}}})")
    expect(host.launcher).to_be_visible()
    host.page.wait_for_function(f"() => window.hostLog.ready > {ready}")
    host.launcher.click()
    expect(host.frame.locator("#empty")).to_contain_text(WIDGET_GREETING)


def test_bad_input_is_ignored_and_a_bad_token_asks_to_sign_in_again(browser, hosts, stack, host_site):
    ada = stack.register_customer("Ada Input", "ada.input@example.com")
    agent_token = stack.agent_token()
    agent_send(stack, agent_token, ada["customer_id"], "One unread reply.")

    # The script twice on one page: one launcher, and a warning.
    host = open_host(browser, hosts, host_site.url(token=ada["token"], twice="1", stranger="1"))
    host.wait_ready()
    expect(host.count).to_have_text("1")
    expect(host.page.locator("parley-widget")).to_have_count(1)

    # A frame of another site posts forged messages to the widget's frame and to the host page; the host
    # page itself posts malformed ones to the widget's frame. Nothing changes.
    host.page.frame_locator("#stranger").locator("body[data-done='yes']").wait_for(state="attached")
    host.page.evaluate("""() => {
      const frame = document.querySelector("parley-widget").shadowRoot.querySelector("iframe").contentWindow;
      const origin = new URL(document.querySelector("script[src$='/widget.js']").src).origin;
      for (const m of [null, 1, "logout", [], {parley: "widget"}, {parley: "widget", v: 2, type: "logout"},
                       {parley: "widget", v: 1, type: "identify", token: 7}, {parley: "widget", v: 1, type: "nope"},
                       {parley: "widget", v: 1, type: "boot", token: "x".repeat(5000), open: true, forget: true}]) {
        frame.postMessage(m, origin);
      }
      window.postMessage({parley: "widget", v: 1, type: "unread", count: 99}, "*");
    }""")
    time.sleep(1)
    expect(host.count).to_have_text("1")
    assert 42 not in host.log()["unread"] and 99 not in host.log()["unread"]
    host.launcher.click()
    expect(host.frame.locator(".msg--theirs", has_text="One unread reply.")).to_be_visible()
    expect(host.frame.locator("#w-me-name")).to_have_text("Ada Input")

    # A forged token: a clear "please reload or sign in again", an error event, nothing crashes.
    forged = open_host(browser, hosts, host_site.url(token="pc.forged.token:abc:def"))
    forged.wait_ready()
    forged.launcher.click()
    expect(forged.frame.get_by_role("heading", name="Please reload or sign in again")).to_be_visible()
    forged.wait_log("log.errors.length > 0")
    assert [e["code"] for e in forged.log()["errors"]] == ["invalid_token"]
    expect(forged.count).to_be_hidden()


def test_the_frame_is_framable_by_the_allowed_origins_only_and_the_pages_not_at_all(stack, host_site):
    import urllib.request

    def headers(path: str) -> Any:
        with urllib.request.urlopen(f"{stack.url}{path}", timeout=10) as r:
            return r.headers

    frame = headers("/widget/frame/")
    policy = frame["Content-Security-Policy"]
    assert f"frame-ancestors {host_site.origin}" in policy
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert frame["X-Frame-Options"] is None
    assert frame["Set-Cookie"] is None  # no cookie: identity comes by postMessage
    for path in ("/chat/start/", "/accounts/login/"):
        h = headers(path)
        assert h["X-Frame-Options"] == "DENY"


def test_the_widget_script_is_small_cached_briefly_and_the_hashed_file_is_what_is_served(stack):
    import urllib.request

    req = urllib.request.Request(f"{stack.url}/widget.js", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Cache-Control"] == "public, max-age=300"
        assert r.headers["Content-Type"].startswith("text/javascript")
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        etag = r.headers["ETag"]
    assert len(body) <= WIDGET_BUDGET_GZIP, f"widget.js is {len(body)} bytes gzipped, over the budget"
    source = gzip.decompress(body)
    # What is served is collectstatic's hashed copy (the built file), byte for byte.
    root = Path(stack.env["PARLEY_STATIC_ROOT"])
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]
    built = root / manifest["web/embed/widget.js"]
    assert re.search(r"widget\.[0-9a-f]{12}\.js$", built.name)
    assert source == built.read_bytes()
    assert len(gzip.compress(built.read_bytes(), 9)) <= WIDGET_BUDGET_GZIP
    again = urllib.request.Request(f"{stack.url}/widget.js", headers={"If-None-Match": etag})
    try:
        urllib.request.urlopen(again, timeout=10)
        raise AssertionError("expected 304 Not Modified")
    except urllib.error.HTTPError as err:
        assert err.code == 304


def test_no_page_address_carries_the_token(browser, hosts, stack, host_site):
    """Neither the frame's address nor any request of it carries the token
    (the websocket's ?token= aside, the protocol's way: docs/widget.md), and
    "Open in a new window" posts it in a body."""
    ada = stack.register_customer("Ada Urls", "ada.urls@example.com")
    host = open_host(browser, hosts, host_site.url(token=ada["token"]))
    requests: list[str] = []
    host.page.context.on("request", lambda r: requests.append(r.url))
    host.page.reload()
    host.wait_ready()
    host.launcher.click()
    expect(host.frame.locator("#composer-input")).to_be_visible()
    token_in = [u for u in requests if ada["token"] in u and not u.startswith(host_site.origin)]
    assert token_in == [], token_in
    # Out to Parley's own page (notifications, installing): signed in there, the address clean.
    with host.page.context.expect_page() as popup_info:
        host.frame.locator("#w-menu summary").click()
        host.frame.get_by_role("button", name="Open in a new window").click()
    popup = popup_info.value
    expect(popup).to_have_url(f"{stack.url}/chat/")
    expect(popup.locator("#connection")).to_have_attribute("data-state", "live")
    assert ada["token"] not in popup.url
    popup.close()


def test_the_example_host_site_works_under_its_own_policy(browser, hosts, stack, host_site):
    """examples/widget/ (docs/widget.md's "Try it locally"), with its <meta> policy: a visitor, then the
    signed-in customer of its token field, an agent's reply counted on its page, and its sign-out."""
    ada = stack.register_customer("Ada Lovelace", "ada@example.com")
    agent_token = stack.agent_token()
    host = open_host(browser, hosts, host_site.url("/example/"))
    events = host.page.locator("#events")
    expect(events).to_contain_text("ready")
    expect(host.launcher).to_be_visible()
    host.page.get_by_label("Customer token").fill(ada["token"])
    host.page.get_by_role("button", name='Sign in: Parley("identify", {token})').click()
    expect(events.locator("li", has_text="ready")).to_have_count(2)  # the chat started over as Ada
    agent_send(stack, agent_token, ada["customer_id"], "Hello Ada! The tent you asked about is back in stock.")
    expect(host.page.locator("#unread")).to_have_text("1")
    expect(host.count).to_have_text("1")
    expect(events).to_contain_text("message from the agent: Hello Ada!")
    host.page.get_by_role("button", name='Parley("open")').click()
    expect(host.frame.locator(".msg--theirs", has_text="back in stock")).to_be_visible()
    expect(host.page.locator("#unread")).to_have_text("0")
    box = host.frame.locator("#composer-input")
    type_into(box, "Great, I'll order it today.")
    box.press("Enter")
    expect(host.frame.locator(".msg--mine", has_text="order it today")).to_have_attribute("data-state", "sent")
    save_screenshot(host.page, "widget-open.png")
    host.page.get_by_role("button", name='Sign out: Parley("logout")').click()
    expect(host.frame.get_by_label("Your name")).to_be_visible()


class _Unredirected(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the redirect itself is the answer


def with_cookie(stack: Stack, path: str, cookie: dict[str, Any]) -> tuple[int, Any, str]:
    """GET ``path`` of Parley carrying this one cookie, as whoever copied it would, redirects not followed:
    the status, the headers and the body the server answers."""
    req = urllib.request.Request(f"{stack.url}{path}", headers={"Cookie": f"{cookie['name']}={cookie['value']}"})
    try:
        with urllib.request.build_opener(_Unredirected).open(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


@contextmanager
def socket_with_cookie(stack: Stack, cookie: dict[str, Any]) -> Iterator[Any]:
    """A socket signed in by this cookie alone, from Parley's own origin (as its chat page opens it), resumed."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(stack.url.replace("http://", "ws://") + "/ws/v1/", open_timeout=10,
                 additional_headers={"Cookie": f"{cookie['name']}={cookie['value']}", "Origin": stack.url}) as ws:
        try:
            ws.send(json.dumps({"type": "resume", "after": 0}))
        except ConnectionClosed:
            pass  # refused already: what it said before closing is still there to read
        yield ws


def closed_with(ws: Any, timeout: float) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes the socket: its close code (None: still open) and the frames before it."""
    from websockets.exceptions import ConnectionClosed

    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            frames.append(json.loads(ws.recv(timeout=left)))
    except TimeoutError:
        return None, frames
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None, frames
    return None, frames


def within_viewport(box: dict[str, float] | None, viewport: dict[str, int]) -> bool:
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and box["width"] > 0 and box["height"] > 0 and (
        box["x"] + box["width"] <= viewport["width"] and box["y"] + box["height"] <= viewport["height"]
    )


@pytest.mark.parametrize("viewport", [pytest.param(PHONE, id="phone-390x844"), pytest.param(DESKTOP, id="desktop-1280x800")])
def test_leave_in_a_window_the_widget_opened_signs_that_window_out_for_good(browser, hosts, stack, host_site, viewport):
    """On the example host site a customer signs in, opens the chat in a window of Parley's own ("Open in
    a new window") and writes there; "Not you? Leave this chat" is wholly on the screen at this size, and
    chosen, shows the pre-chat form and nothing of hers (Back neither). The window's old cookie, kept by
    whoever copied it, then signs nobody in: /chat/ sends it to the form and drops it, the API answers
    401, a new socket is refused (4401) and one opened before is closed (4401). Only that window is
    signed out: her token, and the widget on the host page, still stand (docs/widget.md)."""
    width = viewport["width"]
    size = f"{width}x{viewport['height']}"
    phone = viewport == PHONE
    name, email = f"Ada Leaving {width}", f"ada.leaving.{width}@example.com"
    question = f"Is the blue tent waterproof? ({size})"
    ada = stack.register_customer(name, email)
    agent_token = stack.agent_token()
    host = open_host(browser, hosts, host_site.url("/example/"), viewport=viewport, phone=phone)
    context = host.page.context
    # The window the widget opens is watched as the host page is (script errors, dialogs, the policy's
    # violations), from its first document on.
    context.add_init_script(f"({RECORD_CSP_VIOLATIONS})()")
    opened: list[Watched] = []
    context.on("page", lambda page: opened.append(Watched(page)))

    # The customer signs in on the host site, opens the chat, and out to a window of its own.
    events = host.page.locator("#events")
    expect(events).to_contain_text("ready")
    host.page.get_by_label("Customer token").fill(ada["token"])
    host.page.get_by_role("button", name='Sign in: Parley("identify", {token})').click()
    expect(events.locator("li", has_text="ready")).to_have_count(2)
    host.page.get_by_role("button", name='Parley("open")').click()
    expect(host.frame.locator("#w-me-name")).to_have_text(name)
    with context.expect_page() as popup:
        host.frame.locator("#w-menu summary").click()
        host.frame.get_by_role("button", name="Open in a new window").click()
    window = popup.value
    expect(window).to_have_url(f"{stack.url}/chat/")
    assert window.viewport_size == viewport
    expect(window.locator("#connection")).to_have_attribute("data-state", "live")
    send(window, question)
    expect(window.locator(".msg--mine", has_text=question)).to_have_attribute("data-state", "sent")
    wait_until(lambda: [m["body"] for m in customer_messages(stack, agent_token, ada["customer_id"])] == [question],
               "the message written in the window did not reach the conversation")
    expect(host.frame.locator(".msg--mine", has_text=question)).to_be_visible()  # one conversation, both places

    # The window's cookie signs her in now, on every way in.
    cookies = [c for c in context.cookies(stack.url) if c["name"] == "parley_customer"]
    assert len(cookies) == 1 and cookies[0]["httpOnly"], cookies
    cookie = cookies[0]
    status, _, body = with_cookie(stack, "/api/v1/badge", cookie)
    assert status == 200, body
    status, _, page = with_cookie(stack, "/chat/", cookie)
    assert status == 200 and name in page
    # A tab of whoever copied the cookie, still open when the window leaves.
    with socket_with_cookie(stack, cookie) as held:
        assert closed_with(held, 1)[0] is None

        # Leave: in the chat's options, wholly on the screen at this size, nothing over it.
        window.locator(".chat-header__actions > details:not(#chat-search) > summary").click()
        leave = window.get_by_role("button", name="Not you? Leave this chat")
        expect(leave).to_be_visible()
        expect(leave).to_be_in_viewport(ratio=1)
        # The box as well: on an emulated phone, a button pushed past the right edge still passed the above.
        assert within_viewport(leave.bounding_box(), viewport), (leave.bounding_box(), viewport)
        assert_laid_out(window, ["details[open] > .menu__panel"], f"the chat's options in the widget's window at {size}")
        expect(window.locator(".menu__who")).to_contain_text(name)  # (whose chat it leaves)
        save_screenshot(window, f"widget-window-leave-{width}.png")
        leave.click()

        # The window: the pre-chat form, nothing of hers, no cookie of hers; Back brings none of it back.
        def shows_nobody(page: Any) -> None:
            expect(page).to_have_url(f"{stack.url}/chat/start/")
            expect(page.get_by_label("Your name")).to_be_visible()
            expect(page.get_by_label("Your name")).to_have_value("")
            expect(page.locator(".msg")).to_have_count(0)
            text = page.locator("body").inner_text()
            assert not [trace for trace in (name, email, question) if trace in text], text

        shows_nobody(window)
        assert [c for c in context.cookies(stack.url) if c["name"] == "parley_customer"] == []
        window.go_back()
        shows_nobody(window)

        # The socket opened with the cookie before: closed, credentials revoked (the sweep runs every 2 s).
        code, frames = closed_with(held, 6)
        assert code == 4401 and frames and frames[-1].get("code") == "credentials_revoked", (code, frames)

    # The old cookie, from outside: the chat page sends it to the pre-chat form and drops it...
    status, headers, _ = with_cookie(stack, "/chat/", cookie)
    assert status == 302 and headers["Location"] == "/chat/start/", (status, headers)
    dropped = [h for h in headers.get_all("Set-Cookie") or [] if h.startswith("parley_customer=")]
    assert len(dropped) == 1 and dropped[0].startswith('parley_customer="";') and "Max-Age=0" in dropped[0], dropped
    # ...the API does not know it...
    status, _, body = with_cookie(stack, "/api/v1/badge", cookie)
    assert status == 401 and json.loads(body)["error"]["code"] == "not_authenticated", (status, body)
    # ...nor does the socket...
    with socket_with_cookie(stack, cookie) as refused:
        code, frames = closed_with(refused, 10)
    assert code == 4401 and [f.get("code") for f in frames] == ["not_authenticated"], (code, frames)
    # ...and a browser holding it opens the chat on the pre-chat form, nothing of hers shown.
    stranger = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    try:
        stranger.add_cookies([cookie])
        watched = Watched(stranger.new_page())
        watched.page.goto(f"{stack.url}/chat/")
        shows_nobody(watched.page)
        assert [c for c in stranger.cookies(stack.url) if c["name"] == "parley_customer"] == []
        assert watched.errors == [] and watched.dialogs == [] and watched.csp_violations() == []
    finally:
        stranger.close()

    # Only that window was signed out: her token still stands, and the widget on the host page still shows her chat.
    assert badge(stack, ada["token"]) == 0
    expect(host.frame.locator("#w-me-name")).to_have_text(name)
    expect(host.frame.locator(".msg--mine", has_text=question)).to_be_visible()
    type_into(host.frame.locator("#composer-input"), "Still here in the widget")
    host.frame.locator("#composer-input").press("Enter")
    expect(host.frame.locator(".msg--mine", has_text="Still here")).to_have_attribute("data-state", "sent")

    # The window ran without a script error, a dialog or a violation of its strict policy.
    assert [w.page for w in opened] == [window]
    assert opened[0].errors == [] and opened[0].dialogs == [], (opened[0].errors, opened[0].dialogs)
    assert opened[0].csp_violations() == []
    assert "/chat/" in opened[0].policies
    for path, policy in opened[0].policies.items():
        assert_strict_policy(path, policy)


def test_files_and_search_work_in_the_widget_with_its_token_alone(browser, hosts, stack, host_site, tmp_path):
    """No cookie in the frame: the upload, the thumbnail (a blob: of the bytes fetched with the token),
    the download and the search all go with the customer token."""
    from tests.support import files

    ada = stack.register_customer("Ada Files", "ada.files@example.com")
    agent_token = stack.agent_token()
    host = open_host(browser, hosts, host_site.url(token=ada["token"]))
    host.launcher.click()
    host.wait_ready()
    frame = host.frame
    picture = tmp_path / "broken-parcel.png"
    picture.write_bytes(files.png((64, 48)))
    frame.locator("#attach-input").set_input_files(str(picture))
    expect(frame.locator(".attachment-chip", has_text="broken-parcel.png")).to_have_attribute("data-state", "ready")
    type_into(frame.locator("#composer-input"), "The parcel arrived crushed: zeppelin-shaped")
    frame.locator("#send").click()
    thumb = frame.locator(".msg--mine .msg__thumb")
    expect(thumb).to_have_attribute("src", re.compile(r"^blob:"))
    thumb.evaluate("(img) => img.decode()")
    assert thumb.evaluate("(img) => img.naturalWidth") == 64
    sent = [m for m in customer_messages(stack, agent_token, ada["customer_id"]) if m["attachments"]]
    assert [a["name"] for a in sent[0]["attachments"]] == ["broken-parcel.png"]
    assert sent[0]["body"] == "The parcel arrived crushed: zeppelin-shaped"

    # The full picture downloads (fetched with the token, saved under its name).
    with host.page.expect_download() as download:
        frame.locator(".msg--mine .msg__attachment--image a").click()
    assert download.value.suggested_filename == "broken-parcel.png"

    # Search: the message found, the match marked.
    frame.locator("#chat-search summary").click()
    type_into(frame.get_by_role("searchbox", name="Search this conversation"), "zeppelin")
    expect(frame.locator("#search-status")).to_have_text("1 result")
    result = frame.locator("#search-results .search-result")
    expect(result).to_have_count(1)
    expect(result.locator("mark")).to_have_text(["zeppelin"])


def test_the_count_resumes_after_the_connection_drops_while_the_chat_is_closed(browser, hosts, stack, host_site):
    """The frame's socket is the chat page's: after a reconnect it resumes from its last position, so a
    reply sent while it was away is counted once it is back (and only once)."""
    ada = stack.register_customer("Ada Offline", "ada.widget.offline@example.com")
    agent_token = stack.agent_token()
    host = open_host(browser, hosts, host_site.url(token=ada["token"]))
    host.wait_ready()
    wait_until(lambda: host.frame_eval("window.parley.socket.state") == "live", "the frame's socket never went live")
    host.page.context.set_offline(True)
    host.frame_eval("window.parley.socket.drop()")
    wait_until(lambda: host.frame_eval("window.parley.socket.state") != "live", "the socket did not notice")
    agent_send(stack, agent_token, ada["customer_id"], "Sent while you were offline")
    agent_send(stack, agent_token, ada["customer_id"], "And a second one")
    time.sleep(1)
    expect(host.count).to_be_hidden()
    host.page.context.set_offline(False)
    expect(host.count).to_have_text("2")
    assert badge(stack, ada["token"]) == 2
    host.launcher.click()
    expect(host.frame.locator(".msg--theirs")).to_have_count(2)
    expect(host.count).to_be_hidden()


def test_a_page_that_forgot_to_log_out_shows_nobodys_conversation(browser, hosts, stack, host_site):
    """A visitor chats, then signs in on the host (identify); the host then 'signs out' without calling
    logout and reloads: neither the customer's nor the earlier visitor's conversation shows."""
    ada = stack.register_customer("Ada Forgetful", "ada.forgetful@example.com")
    host = open_host(browser, hosts, host_site.url())
    host.wait_ready()
    host.launcher.click()
    type_into(host.frame.get_by_label("Your name"), "Anonymous Ada")
    type_into(host.frame.get_by_label("Email"), "anon.ada@example.com")
    host.frame.get_by_role("button", name="Start chatting").click()
    type_into(host.frame.locator("#composer-input"), "A question before signing in")
    host.frame.locator("#composer-input").press("Enter")
    expect(host.frame.locator(".msg--mine", has_text="before signing in")).to_have_attribute("data-state", "sent")

    host.page.evaluate(f"Parley('identify', {{token: {json.dumps(ada['token'])}}})")
    expect(host.frame.locator("#w-me-name")).to_have_text("Ada Forgetful")
    host.page.reload()  # no token handed over this time, and no logout either
    host.wait_ready()
    host.launcher.click()
    expect(host.frame.get_by_label("Your name")).to_be_visible()
    expect(host.frame.locator(".msg")).to_have_count(0)
