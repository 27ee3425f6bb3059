"""What an upload is, read from its bytes (attachments.sniff): no database, no Django."""

from __future__ import annotations

import codecs

import pytest

from attachments.sniff import TEXT, is_plain_text, sniff
from tests.support import files


@pytest.mark.parametrize("expected", sorted(files.ALLOWED))
def test_each_accepted_type_is_recognised(expected):
    assert sniff(files.ALLOWED[expected]()) == expected


@pytest.mark.parametrize("data", [files.HTML, files.SVG, files.EXE, files.zip_file(), b"", b"\x00\x01\x02\x03",
                                  b"<?xml version='1.0'?><a/>", b"  <div onclick=x>hi</div>"])
def test_markup_programs_archives_and_binary_noise_are_refused(data):
    assert sniff(data) is None


def test_plain_text_is_utf8_without_control_characters_but_whitespace():
    assert is_plain_text("Tab\tseparated\r\nlines\fand a form feed, ünïcödé ✓".encode())
    assert is_plain_text(codecs.BOM_UTF8 + b"with a byte order mark")
    assert not is_plain_text("caf\xe9".encode("latin-1"))  # not UTF-8
    assert not is_plain_text(b"bell\x07")
    assert not is_plain_text(b"escape \x1b[31m red")
    assert not is_plain_text(b"delete\x7f")
    assert sniff(b"1 < 2 and 3 > 2\n") == TEXT  # a "<" inside text is fine; a document that starts with one is not


def test_a_png_signature_wins_over_a_text_like_tail():
    assert sniff(files.png() + b"<script>alert(1)</script>") == "image/png"
