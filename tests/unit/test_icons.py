"""The pages' icons are drawings (web/icons.py), never characters a font may lack."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from web import icons

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
#: Where an icon could hide as a character: the templates, the stylesheets, the pages' scripts, the
#: embed script a customer's site loads, and the push scripts (the service worker draws notifications).
SOURCES = [*WEB.glob("templates/web/*.html"), *WEB.glob("static/web/css/*.css"), *WEB.glob("static/web/js/*.js"),
           *WEB.glob("static/web/embed/*.js"), *ROOT.glob("notifications/static/**/*.js")]
#: The one such character allowed: the API's preview of a message of files, which icons.js turns into a drawing.
ALLOWED = {"\\u{1F4CE}"}


def test_every_icon_is_a_symbol_of_the_sprite_and_one_shows_it():
    sprite = str(icons.sprite())
    for name in icons.ICONS:
        assert f'<symbol id="icon-{name}" viewBox="0 0 24 24">' in sprite
        assert f'href="#icon-{name}"' in str(icons.icon(name))
    assert 'aria-hidden="true"' in str(icons.icon("paperclip")) and "style=" not in sprite


def test_an_unknown_icon_is_an_error_not_an_empty_box():
    with pytest.raises(KeyError):
        icons.icon("no-such-icon")


def test_no_page_draws_an_icon_with_a_symbol_or_emoji_character():
    assert {"widget.js", "sw.js", "push.js"} <= {path.name for path in SOURCES}
    found = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for escape in re.findall(r"&#x?[0-9a-fA-F]+;|\\u\{?[0-9a-fA-F]{4,5}\}?|\\[0-9a-fA-F]{4,5}\b", text):
            if escape not in ALLOWED and not escape.lower().startswith(("\\u00", "\\u20", "\\u2026")):
                found.append(f"{path.name}: {escape}")
        for ch in set(text):
            if ord(ch) >= 0x2190 and unicodedata.category(ch) in ("So", "Sm") or ord(ch) >= 0x1F000:
                found.append(f"{path.name}: {ch!r} ({unicodedata.name(ch, '?')})")
    assert found == []
