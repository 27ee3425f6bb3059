"""Telling a database outage from a bug, and a dead idle connection from a live one (workers.outage)."""

from __future__ import annotations

import socket

from django.db import OperationalError

from workers.outage import is_dead, is_outage


def test_a_connection_error_is_an_outage_also_when_it_caused_another_error():
    assert is_outage(OperationalError("connection refused"))
    try:
        try:
            raise OperationalError("server closed the connection unexpectedly")
        except OperationalError as inner:
            raise RuntimeError("while handling a frame") from inner
    except RuntimeError as outer:
        assert is_outage(outer)
    assert not is_outage(ValueError("a bug"))


class _Raw:
    """What is_dead asks of a driver connection: closed, broken, fileno()."""

    closed = broken = False

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


def test_an_idle_connection_is_dead_once_the_server_closed_it_and_alive_before():
    ours, theirs = socket.socketpair()
    try:
        assert not is_dead(_Raw(ours))  # nothing to read: alive
        theirs.close()  # the server went away
        assert is_dead(_Raw(ours))
    finally:
        ours.close()
