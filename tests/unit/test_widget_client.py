"""The website widget's pieces that need no server: the size budget of the
host page's script, the spelling of PARLEY_WIDGET_ORIGINS, and the page
socket authenticating with a token (the widget's frame has no cookie).

The size is checked on the file as collectstatic takes it (it is served as
it is; tests/e2e/test_widget.py checks the collected, hashed copy a real
server answers /widget.js with). How fast its launcher appears is a
benchmark figure, not a test: bench/widget.py."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.settings import widget_origins

ROOT = Path(__file__).resolve().parents[2]
WIDGET_JS = ROOT / "web" / "static" / "web" / "embed" / "widget.js"
SOCKET_JS = ROOT / "web" / "static" / "web" / "js" / "socket.js"
BUDGET = 15 * 1024


def test_widget_js_is_within_its_budget_of_15_kb_gzipped():
    size = len(gzip.compress(WIDGET_JS.read_bytes(), 9))
    assert size <= BUDGET, f"widget.js is {size} bytes gzipped; the budget is {BUDGET}"


def test_widget_js_is_one_plain_script_with_one_global():
    source = WIDGET_JS.read_text()
    # A classic script (a host includes it with a plain <script src async>): no module syntax.
    assert not re.search(r"^\s*(import|export)\s", source, re.M)
    # ES2017: none of the later syntax an older browser would choke on.
    for later in ("?.", "??", "**="):
        assert later not in source, later
    # Its only global is window.Parley; all else lives in one function's scope.
    assert re.findall(r"window\.(\w+)\s*=[^=]", source) == ["Parley"]
    assert source.rstrip().endswith("})();")


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("", []),
        ("https://shop.example.com", ["https://shop.example.com"]),
        ("https://Shop.Example.com:443/ http://127.0.0.2:8080", ["https://shop.example.com", "http://127.0.0.2:8080"]),
        ("http://localhost:80,https://a.example", ["http://localhost", "https://a.example"]),
        ("http://[::1]:8080 http://[::1]:8080", ["http://[::1]:8080"]),
    ],
)
def test_widget_origins_are_spelled_as_browsers_give_them(raw, origins):
    assert widget_origins(raw) == origins


@pytest.mark.parametrize(
    "raw",
    ["*", "https://*.example.com", "shop.example.com", "ftp://shop.example.com", "https://shop.example.com/path",
     "https://user@shop.example.com", "https://shop.example.com?x=1", "https://shop.example.com:99999", "https://"],
)
def test_anything_but_an_origin_is_a_configuration_error(raw):
    with pytest.raises(ImproperlyConfigured):
        widget_origins(raw)


HARNESS = r"""
const { pathToFileURL } = require("url");
const urls = [];
class FakeWebSocket { static OPEN = 1; constructor(url) { urls.push(url); } addEventListener() {} close() {} }
globalThis.WebSocket = FakeWebSocket;
globalThis.window = { addEventListener() {} };
globalThis.document = { addEventListener() {}, visibilityState: "visible" };
globalThis.location = { protocol: "https:", host: "parley.test" };
(async () => {
  const { ParleySocket } = await import(pathToFileURL(process.argv[2]).href);
  new ParleySocket("/ws/v1/").start();
  const widget = new ParleySocket("/ws/v1/", { token: "pc.a+b/c:d" });
  widget.start();
  widget.token = "pc.renewed";
  widget.ws = null;
  widget.connect();
  console.log(JSON.stringify(urls));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's socket client")
def test_the_socket_authenticates_with_the_widgets_token_and_a_renewed_one_from_the_next_connect(tmp_path: Path):
    harness = tmp_path / "harness.cjs"
    harness.write_text(HARNESS)
    run = subprocess.run(["node", str(harness), str(SOCKET_JS)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [
        "wss://parley.test/ws/v1/",  # a page: its cookie
        "wss://parley.test/ws/v1/?token=pc.a%2Bb%2Fc%3Ad",
        "wss://parley.test/ws/v1/?token=pc.renewed",
    ]
