"""The dashboard's saved replies (web/static/web/js/canned.js): which "/" opens
the list, what it matches, and how a reply's placeholders are filled in.
Run in Node (the functions are plain JavaScript)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CANNED_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "web" / "js" / "canned.js"

HARNESS = r"""
const { pathToFileURL } = require("url");
(async () => {
  const { fill, slashQuery, SavedReplies } = await import(pathToFileURL(process.argv[2]).href);
  const ctx = { customer: "Ada  Lovelace", agent: "Grace Hopper" };
  const replies = new SavedReplies();
  replies.items = [
    { shortcut: "refund", title: "Refund on its way", body: "" },
    { shortcut: "hello", title: "Greeting", body: "" },
    { shortcut: "late-refund", title: "Late", body: "" },
  ];
  console.log(JSON.stringify({
    filled: fill("Hi {{customer.first_name}} ({{ customer.name }}), {{agent.first_name}} of {{agent.name}} {{order.id}}", ctx),
    noName: fill("Hi {{customer.first_name}}!", { customer: "", agent: "" }),
    markup: fill("{{customer.name}}", { customer: "<b>x</b>", agent: "" }),
    atStart: slashQuery("/ref", 4),
    afterSpace: slashQuery("Sure, /ref", 10),
    inWord: slashQuery("and/or", 6),
    afterText: slashQuery("/ref more", 9),
    caretInside: slashQuery("/refund", 3),
    bare: slashQuery("x /", 3),
    matched: replies.matching("ref").map((c) => c.shortcut),
    byTitle: replies.matching("greet").map((c) => c.shortcut),
  }));
})();
"""

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the dashboard's scripts")


def test_slash_offers_saved_replies_and_placeholders_are_filled_as_text(tmp_path: Path) -> None:
    harness = tmp_path / "harness.cjs"
    harness.write_text(HARNESS)
    run = subprocess.run(["node", str(harness), str(CANNED_JS)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["filled"] == "Hi Ada (Ada  Lovelace), Grace of Grace Hopper {{order.id}}"
    assert out["noName"] == "Hi !"
    assert out["markup"] == "<b>x</b>"  # text: the box shows it as written, nothing is parsed
    assert out["atStart"] == {"start": 0, "query": "ref"}
    assert out["afterSpace"] == {"start": 6, "query": "ref"}
    assert out["inWord"] is None and out["afterText"] is None
    assert out["caretInside"] == {"start": 0, "query": "re"}
    assert out["bare"] == {"start": 2, "query": ""}
    assert out["matched"] == ["refund", "late-refund"]  # a shortcut that starts with it first
    assert out["byTitle"] == ["hello"]
