"""The pages' websocket client (web/static/web/js/socket.js) follows the protocol:
resume from the last applied position on every connect, answer ``resync``
with ``resume`` on the same socket, reconnect and resume after a close
(4000 included), and stop for good on 4401 and on 4410 (the customer was
erased). Run in Node against a stand-in WebSocket that records what the page
sends."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SOCKET_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "web" / "js" / "socket.js"

PRELUDE = r"""
const { pathToFileURL } = require("url");
const sockets = [];
class FakeWebSocket {
  static OPEN = 1;
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; this.listeners = {}; sockets.push(this); }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code) { this.emit("close", { code: code || 1000 }); }
  emit(type, event) {
    if (type === "open") this.readyState = 1;
    if (type === "close") this.readyState = 3;
    for (const fn of this.listeners[type] || []) fn(event || {});
  }
  frame(obj) { this.emit("message", { data: JSON.stringify(obj) }); }
}
globalThis.WebSocket = FakeWebSocket;
globalThis.window = { addEventListener() {} };
globalThis.document = { addEventListener() {}, visibilityState: "visible" };
globalThis.location = { protocol: "http:", host: "parley.test" };
Math.random = () => 0;  // the shortest backoff: half the base delay

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = {};
"""

HARNESS = PRELUDE + r"""
(async () => {
  const { ParleySocket } = await import(pathToFileURL(process.argv[2]).href);
  const s = new ParleySocket("/ws/v1/", { position: 7 });
  const states = [];
  let unauthorized = 0;
  s.addEventListener("state", (e) => states.push(e.detail));
  s.addEventListener("unauthorized", () => unauthorized++);
  s.start();
  const first = sockets[0];
  first.emit("open");
  first.frame({ type: "message.sent", message: { message_id: "m1" }, position: 9 });
  first.frame({ type: "resync" });
  out.afterResync = { sent: first.sent, state: s.state };
  first.frame({ type: "message.sent", message: { message_id: "m2" }, position: 11 });
  first.frame({ type: "resumed", position: 12 });
  out.afterResumed = { position: s.position, state: s.state };
  first.close(4000);
  await sleep(400);
  const second = sockets[1];
  out.reconnected = second !== undefined;
  second.emit("open");
  out.secondSent = second.sent;
  second.close(4401);
  await sleep(400);
  out.afterUnauthorized = { sockets: sockets.length, unauthorized, state: s.state };
  out.states = states;
  console.log(JSON.stringify(out));
})();
"""

ERASED = PRELUDE + r"""
(async () => {
  const { ParleySocket } = await import(pathToFileURL(process.argv[2]).href);
  const s = new ParleySocket("/ws/v1/", { position: 7 });
  const events = [];
  for (const name of ["live", "unauthorized", "erased"]) s.addEventListener(name, (e) => events.push([name, e.detail ?? null]));
  const frames = [];
  s.addEventListener("frame", (e) => frames.push(e.detail.type));
  s.start();
  const first = sockets[0];
  first.emit("open");
  first.frame({ type: "resumed", position: 7 });
  first.frame({ type: "customer.erased", customer_id: "c1", position: 20 });
  first.close(4410);
  await sleep(400); // past the first backoff
  s.reconnectNow(); // what the network or the tab coming back does
  await sleep(400);
  out.afterErased = { sockets: sockets.length, events, frames, state: s.state, position: s.position };
  console.log(JSON.stringify(out));
})();
"""

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's socket client")


def run_harness(tmp_path: Path, script: str) -> dict:
    harness = tmp_path / "harness.cjs"
    harness.write_text(script)
    run = subprocess.run(["node", str(harness), str(SOCKET_JS)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_page_socket_resumes_answers_resync_and_reconnects_after_4000(tmp_path: Path) -> None:
    out = run_harness(tmp_path, HARNESS)
    # The first connect resumes from the position the page loaded at; resync
    # is answered on the same socket with the last applied position.
    assert out["afterResync"]["sent"] == [{"type": "resume", "after": 7}, {"type": "resume", "after": 9}]
    assert out["afterResync"]["state"] == "resuming"
    assert out["afterResumed"] == {"position": 12, "state": "live"}
    # 4000: reconnect, and resume from the last position.
    assert out["reconnected"]
    assert out["secondSent"] == [{"type": "resume", "after": 12}]
    # 4401: stop for good and say so.
    assert out["afterUnauthorized"] == {"sockets": 2, "unauthorized": 1, "state": "closed"}


def test_the_page_socket_stops_for_good_when_the_server_closes_with_4410_erased(tmp_path: Path) -> None:
    out = run_harness(tmp_path, ERASED)
    # The frame reaches the page, then the close: one "erased" event, no
    # reconnect (not by backoff, not when the network or the tab comes back).
    assert out["afterErased"] == {
        "sockets": 1, "events": [["live", None], ["erased", 4410]], "frames": ["customer.erased"], "state": "closed",
        "position": 7,
    }
