"""How soon the website widget's launcher appears (issue 26: within 300 ms of
the script loading, on a local server), beside a same-run baseline.

A real Parley server (the embedded shape of `make run`: one `manage.py
serve`, SQLite, production settings and collected static files, started
with the helpers of tests/e2e/conftest.py) and a host site on another
origin (127.0.0.2, a threaded http.server) whose pages load, with
`<script async>`:

* **widget**: Parley's `/widget.js` (the launcher in a shadow root, the
  hidden chat frame, the settings request);
* **baseline**: a bare script from the host site that adds one button to
  the page and nothing else: what any script needs to appear.

In each page a small probe script notes, with `performance.now()`, when the
button (or the widget's element) is attached (a MutationObserver) and when
the next frame has been painted after it (a `requestAnimationFrame` and a
task). The figure is **painted minus the script's `responseEnd`** from the
Resource Timing entry: from the last byte of the script to the launcher on
screen (parsing, running, building the launcher, style and paint). For
the widget the time until the chat is ready to open (its `ready` event:
the frame loaded, identity settled, the conversation loaded) is noted too.

Every load is a fresh browser context (a cold cache), widget and baseline
taking turns, BENCH_WIDGET_RUNS (40) of each after 3 untimed ones; Debian's
Chromium through Playwright. `uptime` is recorded before measuring.

Then how soon an agent's reply shows on a closed widget's launcher (issue
26: within a second): a customer signed in by token on a host page, the
chat never opened, BENCH_WIDGET_REPLIES (30) replies sent over HTTP one at
a time; from just before each request to the launcher's count becoming
that reply's number, beside the request's own answer.

    .venv/bin/python bench/widget.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import load_note, loadavg, log, percentile  # noqa: E402
from bench.report import table, write_section  # noqa: E402
from tests.e2e import conftest as e2e  # noqa: E402

RUNS = int(os.environ.get("BENCH_WIDGET_RUNS", "40"))
#: Agent replies whose way to the closed widget's launcher count is timed.
REPLIES = int(os.environ.get("BENCH_WIDGET_REPLIES", "30"))
WARMUP = 3
HOST = "127.0.0.2"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# Notes when the launcher (or the baseline's button) is attached and painted.
PROBE = """
window.probe = { attached: null, painted: null, ready: null };
new MutationObserver((records, observer) => {
  for (const r of records) for (const n of r.addedNodes) {
    if (n.nodeName === "PARLEY-WIDGET" || n.id === "bare-button") {
      probe.attached = performance.now();
      requestAnimationFrame(() => setTimeout(() => { probe.painted = performance.now(); }));
      observer.disconnect();
    }
  }
}).observe(document.documentElement, { childList: true, subtree: true });
window.Parley = window.Parley || function () { (Parley.q = Parley.q || []).push(arguments); };
Parley("on", "ready", () => { if (probe.ready === null) probe.ready = performance.now(); });
"""
BARE = """
const b = document.createElement("button");
b.id = "bare-button";
b.type = "button";
b.textContent = "Help";
b.style.cssText = "position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%";
document.body.appendChild(b);
"""


# A signed-in customer's host page: notes when the launcher's count changes (the widget's
# "unread" event, sent as it sets the count), with the wall clock the bench compares with.
COUNTER = """
window.counts = [];
window.Parley = window.Parley || function () { (Parley.q = Parley.q || []).push(arguments); };
Parley("boot", { token: new URLSearchParams(location.search).get("token") });
Parley("on", "unread", (n) => { counts.push([Date.now(), n]); });
Parley("on", "ready", () => { window.chatReady = true; });
"""


def page(script: str) -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host</title>'
            f'<script src="/probe.js"></script></head><body><h1>A host page</h1>'
            f'<script src="{script}" async></script></body></html>')


class HostSite:
    def __init__(self) -> None:
        self.parley = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                body, media = {
                    "/probe.js": (PROBE, "text/javascript"),
                    "/counter.js": (COUNTER, "text/javascript"),
                    "/signed-in.html": (page(f"{site.parley}/widget.js").replace("/probe.js", "/counter.js"),
                                        "text/html"),
                    "/bare.js": (BARE, "text/javascript"),
                    "/widget.html": (page(f"{site.parley}/widget.js"), "text/html"),
                    "/baseline.html": (page("/bare.js"), "text/html"),
                }.get(path, ("", ""))
                if not media:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", f"{media}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}"


def measure(browser: Any, url: str, script: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        p = context.new_page()
        p.goto(url)
        p.wait_for_function("() => window.probe && window.probe.painted !== null", timeout=30_000)
        if "widget" in url:
            p.wait_for_function("() => window.probe.ready !== null", timeout=30_000)
        return dict(p.evaluate(
            """(script) => {
              const entry = performance.getEntriesByType("resource").find((e) => e.name === script);
              return { loaded: entry.responseEnd, attached: probe.attached, painted: probe.painted,
                       ready: probe.ready === null ? NaN : probe.ready };
            }""",
            script,
        ))
    finally:
        context.close()


def replies_counted(browser: Any, stack: Any, host: HostSite) -> tuple[list[float], list[float]]:
    """(reply -> launcher count, reply -> the send's answer) in ms for REPLIES agent replies to a
    customer whose widget stays closed on a host page, one reply once the last one was counted."""
    import time
    import urllib.parse
    import uuid

    customer = stack.register_customer("Bench Customer", "bench.customer@example.com")
    agent = stack.agent_token()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    counted, answered = [], []
    try:
        p = context.new_page()
        p.goto(f"{host.origin}/signed-in.html?token={urllib.parse.quote(customer['token'])}")
        p.wait_for_function("() => window.chatReady === true", timeout=30_000)
        for n in range(1, WARMUP + REPLIES + 1):
            sent = time.time() * 1000
            status, _ = e2e.http("POST", f"{stack.url}/api/v1/conversations/{customer['customer_id']}/messages",
                                 {"message_id": str(uuid.uuid4()), "body": f"Reply {n}"}, agent)
            done = time.time() * 1000
            assert status == 201, status
            p.wait_for_function(f"() => window.counts.some(([, c]) => c === {n})", timeout=30_000)
            shown = p.evaluate(f"window.counts.find(([, c]) => c === {n})[0]")
            if n > WARMUP:
                counted.append(shown - sent)
                answered.append(done - sent)
    finally:
        context.close()
    return counted, answered


def served_size(url: str) -> tuple[int, int]:
    """(bytes as served gzipped, bytes of the script) of /widget.js."""
    import gzip
    import urllib.request

    request = urllib.request.Request(f"{url}/widget.js", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as r:
        body = r.read()
        packed = r.headers.get("Content-Encoding") == "gzip"
    return len(body), len(gzip.decompress(body) if packed else body)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {loadavg()}"


def stats(values: list[float]) -> list[str]:
    return [f"{percentile(values, 0.5):.1f}", f"{percentile(values, 0.95):.1f}", f"{max(values):.1f}"]


def main() -> int:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PARLEY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    # The database plays no part in showing a launcher: the embedded shape, as `make run`.
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    host = HostSite()
    tmp = Path(tempfile.mkdtemp(prefix="bench-widget-"))
    stack, drop = e2e.start_stack(tmp, extra_env={"PARLEY_WIDGET_ORIGINS": host.origin, "LOG_LEVEL": "WARNING"})
    host.parley = stack.url
    results: dict[str, list[dict[str, float]]] = {"widget": [], "baseline": []}
    try:
        served = served_size(stack.url)
        before_uptime, before_load = uptime(), loadavg()
        log(f"  {before_uptime}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                for i in range(WARMUP + RUNS):
                    for kind, url, script in (
                        ("widget", f"{host.origin}/widget.html", f"{stack.url}/widget.js"),
                        ("baseline", f"{host.origin}/baseline.html", f"{host.origin}/bare.js"),
                    ):
                        m = measure(browser, url, script)
                        if i >= WARMUP:
                            results[kind].append(m)
                counted, answered = replies_counted(browser, stack, host)
            finally:
                browser.close()
    finally:
        e2e.stop_stack(stack)
        drop()
        host.server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for kind in ("widget", "baseline"):
        runs = results[kind]
        shown = [r["painted"] - r["loaded"] for r in runs]
        attached = [r["attached"] - r["loaded"] for r in runs]
        rows.append([kind, *stats(shown), *stats(attached)])
    ready = [r["ready"] - r["loaded"] for r in results["widget"]]
    widget_p95 = percentile([r["painted"] - r["loaded"] for r in results["widget"]], 0.95)
    body = f"""
How soon the website widget's launcher is on screen once its script has
loaded (issue 26: at most 300 ms), beside a **baseline**: a bare script from
the host site that adds one button. A host page on 127.0.0.2 loads the
script with `<script async>` from Parley's embedded server (`manage.py
serve`, production settings, collected static files) on 127.0.0.1;
Debian's Chromium (headless, through Playwright), a fresh browser context
(cold cache) per load, widget and baseline taking turns, {RUNS} loads
each after {WARMUP} untimed ones. **Shown**: from the script's
`responseEnd` (Resource Timing) to the first frame painted after the
launcher was attached; **attached**: to the element in the document.
Milliseconds.

{table(["script", "shown p50", "shown p95", "shown max", "attached p50", "attached p95", "attached max"], rows)}

The widget's launcher: p95 **{widget_p95:.0f} ms** against the 300 ms budget.
`/widget.js` as served: {served[0]:,} bytes gzipped ({served[1]:,} bytes of script), against
the 15 KB budget (15,360 bytes; tests/unit/test_widget_client.py and
tests/e2e/test_widget.py check it). The chat
itself is ready to open (the `ready` event: the frame loaded, its identity
settled, the pre-chat form shown) {percentile(ready, 0.5):.0f} ms (p50),
{percentile(ready, 0.95):.0f} ms (p95) after the script loaded; the
launcher does not wait for it.

**An agent's reply on the closed widget's launcher.** A customer signed in
by token on a host page (127.0.0.2), the chat never opened; an agent
sends {REPLIES} replies over HTTP (after {WARMUP} untimed), each once the
last was counted. **Counted**: from just before the agent's request to the
launcher's count changing to that reply's number (the widget's `unread`
event, sent as it sets the count; both clocks the machine's own) —
the command, the pipeline's batch, the frame to the widget's socket and
the message from the frame to the launcher. **Baseline**: the same
request's own answer (`201`). The embedded server (one `serve`, SQLite,
the pipeline in the same process). Milliseconds.

{table(["from an agent's reply to", "p50", "p95", "max"],
       [["**the launcher's count**", *stats(counted)], ["baseline: the send's answer", *stats(answered)]])}

An agent's reply raises the closed widget's count in **{percentile(counted, 0.95):.0f} ms** (p95),
against "within a second".

`uptime` before measuring: `{before_uptime}` (2 cores; load {before_load} at the start).
{load_note(before_load)}"""
    write_section("widget", "Website widget launcher (bench/widget.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
