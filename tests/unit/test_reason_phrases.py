"""Every status Parley answers goes out with its reason phrase under Daphne (Twisted),
not ``Unknown Status``."""

from __future__ import annotations

from http import HTTPStatus

from twisted.web.http import Request
from twisted.web.test.requesthelper import DummyChannel

from project.daphne import name_every_status


def test_every_status_has_its_reason_phrase_on_the_wire():
    name_every_status()
    for status in HTTPStatus:
        request = Request(DummyChannel())
        request.setResponseCode(status.value)
        assert request.code_message != b"Unknown Status", status
    request = Request(DummyChannel())
    request.setResponseCode(429)
    assert request.code_message == b"Too Many Requests"
