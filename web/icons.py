"""The pages' icons: small line drawings, as inline SVG.

Icons used to be characters ("📎", "⌕", "⋯"): on a system without an emoji
font they render as empty boxes, and their size and baseline follow
whichever font has them. These are drawn here once, on a 24 × 24 grid,
stroked with the text colour (``currentColor``). ``sprite`` puts every one
in the page as a ``<symbol>`` (web/templates/web/base.html); a template
shows one with ``{% icon "name" %}`` and a script with icons.js, both as a
``<use>`` of that symbol: one drawing of each, and nothing the pages'
Content-Security-Policy refuses (SVG presentation attributes are not
styles).
"""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

#: name -> the path data of its drawing.
ICONS: dict[str, str] = {
    "paperclip": "M20.5 11.5l-8.4 8.4a5.5 5.5 0 0 1-7.8-7.8l8.8-8.8a3.7 3.7 0 0 1 5.2 5.2l-8.8 8.8"
                 "a1.8 1.8 0 0 1-2.6-2.6l8.1-8.1",
    "file": "M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5M9 13h6M9 17h6",
    "search": "M10.5 3.5a7 7 0 1 0 0 14a7 7 0 1 0 0-14zM15.5 15.5L21 21",
    "more": "M5 10.5a1.5 1.5 0 1 0 0 3a1.5 1.5 0 1 0 0-3zM12 10.5a1.5 1.5 0 1 0 0 3a1.5 1.5 0 1 0 0-3z"
            "M19 10.5a1.5 1.5 0 1 0 0 3a1.5 1.5 0 1 0 0-3z",
    "back": "M19 12H5M11 18l-6-6 6-6",
    "close": "M6 6l12 12M18 6L6 18",
    "down": "M12 5v14M18 13l-6 6-6-6",
    "bell": "M6 9a6 6 0 0 1 12 0c0 6 2.5 8 2.5 8h-17S6 15 6 9zM10 20.5a2.2 2.2 0 0 0 4 0",
    "tag": "M3 12.2V4a1 1 0 0 1 1-1h8.2a1 1 0 0 1 .7.3l8 8a1 1 0 0 1 0 1.4l-8.2 8.2a1 1 0 0 1-1.4 0l-8-8"
           "a1 1 0 0 1-.3-.7zM8 8h.01",
    "unread": "M4 6h16v12H4zM4 7l8 6 8-6",
    "reply": "M9 7L4 12l5 5M4 12h11a5 5 0 0 1 5 5v1",
    "clock": "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18zM12 7v5l3 2",
}


def sprite() -> SafeString:
    """Every icon as a ``<symbol id="icon-<name>">``, in one SVG that takes no room."""
    symbols = format_html_join(
        "", '<symbol id="icon-{}" viewBox="0 0 24 24"><path d="{}"/></symbol>', ICONS.items()
    )
    return format_html(
        '<svg class="icon-sprite" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" '
        'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{}</svg>',
        symbols,
    )


def icon(name: str, extra_class: str = "") -> SafeString:
    """One icon, decorative (the control it sits in carries the label)."""
    if name not in ICONS:
        raise KeyError(f"no icon {name!r} in web.icons")
    classes = f"icon {extra_class}".strip()
    return format_html(
        '<svg class="{}" aria-hidden="true" focusable="false"><use href="#icon-{}"/></svg>', classes, name
    )
