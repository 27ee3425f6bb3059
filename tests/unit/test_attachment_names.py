"""The name an upload is shown under (attachments.services.clean_name)."""

from __future__ import annotations

from attachments.services import MAX_NAME_CHARS, clean_name


def test_only_the_last_path_segment_is_kept():
    assert clean_name("C:\\Users\\ada\\photo.png") == "photo.png"
    assert clean_name("../../etc/passwd") == "passwd"


def test_control_and_formatting_characters_are_dropped():
    assert clean_name("invoice\u202efdp.exe") == "invoicefdp.exe"
    assert clean_name("line\r\nbreak.txt") == "linebreak.txt"
    assert clean_name("zero\u200bwidth.txt") == "zerowidth.txt"


def test_an_empty_or_hidden_name_becomes_attachment():
    assert clean_name("") == "attachment"
    assert clean_name("...") == "attachment"
    assert clean_name(".bashrc") == "bashrc"


def test_a_long_name_is_cut_keeping_its_extension():
    name = clean_name("x" * 500 + ".pdf")
    assert len(name) == MAX_NAME_CHARS and name.endswith(".pdf")


def test_a_download_name_follows_the_sniffed_type():
    from attachments.services import name_for_type
    assert name_for_type("invoice.html", "text/plain") == "invoice.txt"
    assert name_for_type("invoice.HTM", "text/plain") == "invoice.txt"
    assert name_for_type("notes", "text/plain") == "notes.txt"
    assert name_for_type("notes.txt", "text/plain") == "notes.txt"
    assert name_for_type("photo.svg", "image/png") == "photo.png"
    assert name_for_type("photo.JPEG", "image/jpeg") == "photo.JPEG"
    assert name_for_type("report.exe", "application/pdf") == "report.pdf"
    assert len(name_for_type("x" * 200, "text/plain")) <= MAX_NAME_CHARS
