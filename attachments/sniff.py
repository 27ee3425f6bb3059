"""What a file is, read from its bytes. No Django.

The client's file name and Content-Type are never asked: a browser or a
script can say anything. The accepted types are those a browser shows
without running anything: PNG, JPEG, GIF and WebP images, PDF, and plain
text. Binary formats are recognised by their signatures (puremagic, a
maintained pure-Python magic database, so no libmagic is needed on the
host); plain text has no signature and is recognised by being text.
"""

from __future__ import annotations

import codecs

import puremagic

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
PDF = "application/pdf"
TEXT = "text/plain"
ALLOWED_TYPES = IMAGE_TYPES | {PDF, TEXT}

#: Bytes read for the signature check (puremagic also looks at the file's end, for a few formats).
HEAD_BYTES = 8192
#: Control characters a text file may hold: tab, line feed, form feed, carriage return.
_TEXT_CONTROLS = frozenset("\t\n\f\r")


def sniff(data: bytes) -> str | None:
    """The accepted type of ``data`` (see ALLOWED_TYPES), or None when it is none of them.

    Among puremagic's equally confident guesses an accepted one wins (a PDF
    also matches FDF's signature); any other identification (HTML, SVG, an
    executable, an archive) refuses the file, even if it would also pass as
    text: markup is never accepted as text/plain.
    """
    if not data:
        return None
    try:
        guesses = puremagic.magic_string(data)
    except puremagic.PureError:
        guesses = []
    if guesses:
        best = max(g.confidence for g in guesses)
        top = [g.mime_type for g in guesses if g.confidence == best]
        for mime in top:
            if mime in IMAGE_TYPES or mime == PDF:
                return mime
        return None
    return TEXT if is_plain_text(data) else None


def is_plain_text(data: bytes) -> bool:
    """UTF-8 (a byte order mark allowed), with no NUL and no control characters but whitespace,
    and not markup (a document that starts with ``<`` is refused rather than called text)."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if any((ch < " " and ch not in _TEXT_CONTROLS) or ch == "\x7f" for ch in text):
        return False
    return not text.lstrip().startswith("<")
