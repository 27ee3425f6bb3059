"""The service worker's push and click handlers, run in Node against a stand-in
of the browser's ServiceWorkerGlobalScope (registration, notifications, badge,
clients). No browser with a push service is available to the test suite;
this checks the worker's own logic: badge set and cleared, one notification
per customer, renotify for new messages, closed at zero, click opens /chat/."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SW = Path(__file__).resolve().parents[2] / "notifications" / "static" / "notifications" / "sw.js"

HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const log = [];
const listeners = {};
let shown = [];
let windows = JSON.parse(process.argv[3]);

function notification(title, options) {
  const n = { title, ...options, close() { shown = shown.filter((x) => x !== n); log.push(["close", title]); } };
  return n;
}

const self = {
  addEventListener: (type, fn) => { listeners[type] = fn; },
  skipWaiting: () => {},
  location: { origin: "https://parley.test" },
  navigator: {
    setAppBadge: async (n) => { log.push(["setAppBadge", n]); },
    clearAppBadge: async () => { log.push(["clearAppBadge"]); },
  },
  registration: {
    showNotification: async (title, options) => {
      shown = shown.filter((x) => x.tag !== options.tag);
      shown.push(notification(title, options));
      log.push(["show", title, { body: options.body, tag: options.tag, renotify: options.renotify, silent: !!options.silent }]);
    },
    getNotifications: async ({ tag }) => shown.filter((n) => n.tag === tag),
  },
  clients: {
    claim: async () => {},
    matchAll: async () => windows.map((w) => ({ url: w, focus: async () => { log.push(["focus", w]); } })),
    openWindow: async (url) => { log.push(["open", url]); },
  },
};

vm.runInNewContext(fs.readFileSync(process.argv[2], "utf8"), { self, URL, Date, Number, JSON, Promise, console });

async function dispatch(type, event) {
  let pending = null;
  event.waitUntil = (p) => { pending = p; };
  listeners[type](event);
  await pending;
}

(async () => {
  const steps = JSON.parse(fs.readFileSync(0, "utf8"));
  for (const step of steps) {
    if (step.push !== undefined) {
      const data = step.push === null ? null : { json: () => { if (typeof step.push === "string") throw new Error("bad"); return step.push; } };
      await dispatch("push", { data });
    } else if (step.click) {
      const n = shown[shown.length - 1] || { data: null, close() {} };
      await dispatch("notificationclick", { notification: n });
    }
    log.push(["showing", shown.length]);
  }
  process.stdout.write(JSON.stringify(log));
})();
"""

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the service worker")


def run(steps: list[dict], windows: list[str] | None = None, tmp_path: Path | None = None) -> list:
    assert tmp_path is not None
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    out = subprocess.run(
        ["node", str(harness), str(SW), json.dumps(windows or [])],
        input=json.dumps(steps), capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(out.stdout)


COUNT_TEXT = "1 unread message from support"


def message(mid: str, preview: str) -> dict:
    return {"message_id": mid, "sender_name": "Grace", "preview": preview, "sent_at": "2026-01-02T03:04:05Z"}


def test_send_send_read_elsewhere_then_all_read(tmp_path):
    log = run(
        [
            {"push": {"type": "badge", "unread": 1, "position": 10, "message": message("m1", "Shipped")}},
            {"push": {"type": "badge", "unread": 2, "position": 11, "message": message("m2", "Tuesday")}},
            {"push": {"type": "badge", "unread": 1, "position": 12, "message": None}},
            {"push": {"type": "badge", "unread": 0, "position": 13, "message": None}},
        ],
        tmp_path=tmp_path,
    )
    assert log == [
        ["setAppBadge", 1],
        ["show", "Grace", {"body": "Shipped", "tag": "parley-chat", "renotify": True, "silent": False}],
        ["showing", 1],
        ["setAppBadge", 2],
        ["show", "Grace", {"body": "Tuesday", "tag": "parley-chat", "renotify": True, "silent": False}],
        ["showing", 1],  # one notification per customer: replaced, not piled up
        ["setAppBadge", 1],
        ["show", "Support", {"body": COUNT_TEXT, "tag": "parley-chat", "renotify": False, "silent": True}],
        ["showing", 1],
        ["clearAppBadge"],
        ["close", "Support"],
        ["showing", 0],
    ]


def test_a_badge_only_push_raises_no_notification_when_none_is_showing(tmp_path):
    log = run([{"push": {"type": "badge", "unread": 3, "position": 5, "message": None}}], tmp_path=tmp_path)
    assert log == [["setAppBadge", 3], ["showing", 0]]


@pytest.mark.parametrize("payload", [None, "not json", {"type": "other"}, {"type": "badge", "unread": -1}])
def test_unknown_or_broken_pushes_change_nothing(tmp_path, payload):
    assert run([{"push": payload}], tmp_path=tmp_path) == [["showing", 0]]


def test_a_click_focuses_an_open_chat_window(tmp_path):
    log = run(
        [{"push": {"type": "badge", "unread": 1, "position": 1, "message": message("m1", "Hi")}}, {"click": True}],
        windows=["https://parley.test/agent/", "https://parley.test/chat/"],
        tmp_path=tmp_path,
    )
    assert log[-2:] == [["focus", "https://parley.test/chat/"], ["showing", 0]]


def test_a_click_opens_the_chat_when_no_window_is_open(tmp_path):
    log = run(
        [{"push": {"type": "badge", "unread": 1, "position": 1, "message": message("m1", "Hi")}}, {"click": True}],
        tmp_path=tmp_path,
    )
    assert log[-2:] == [["open", "https://parley.test/chat/"], ["showing", 0]]
