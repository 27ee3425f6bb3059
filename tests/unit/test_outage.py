"""Telling a database outage from a bug, and a dead idle connection from a live one (workers.outage)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import psycopg
import pytest
from django.db import OperationalError
from django.db.utils import DatabaseErrorWrapper
from psycopg import errors
from psycopg_pool import PoolTimeout

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


def _as_django_raises(driver_error: BaseException) -> BaseException:
    """What a view sees: the driver's error wrapped by Django (django.db.utils), the driver's as its cause."""
    try:
        with DatabaseErrorWrapper(SimpleNamespace(errors_occurred=False)):
            raise driver_error
    except Exception as wrapped:
        return wrapped
    raise AssertionError("not raised")


@pytest.mark.parametrize("error", [
    psycopg.OperationalError("connection failed: Connection refused"),  # libpq's own: no SQLSTATE
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    psycopg.InterfaceError("the connection is closed"),
    PoolTimeout("couldn't get a connection after 2.00 sec"),
    errors.ConnectionFailure("connection failure"),  # 08006
    errors.SqlclientUnableToEstablishSqlconnection("cannot establish"),  # 08001
    errors.AdminShutdown("terminating connection due to administrator command"),  # 57P01
    errors.CrashShutdown("terminating connection because of crash of another server process"),  # 57P02
    errors.CannotConnectNow("the database system is starting up"),  # 57P03
    errors.TooManyConnections("sorry, too many clients already"),  # 53300
], ids=lambda e: type(e).__name__ + (f"-{e.sqlstate}" if e.sqlstate else ""))
def test_a_lost_or_refused_connection_is_an_outage_raw_or_as_django_raises_it(error):
    assert is_outage(error)
    assert is_outage(_as_django_raises(error))


@pytest.mark.parametrize("error", [
    errors.DeadlockDetected("deadlock detected"),  # 40P01
    errors.SerializationFailure("could not serialize access"),  # 40001
    errors.QueryCanceled("canceling statement due to statement timeout"),  # 57014
    errors.LockNotAvailable("canceling statement due to lock timeout"),  # 55P03
], ids=lambda e: type(e).__name__)
def test_a_deadlock_or_a_statement_timeout_is_an_error_of_the_statement_not_an_outage(error):
    """The server answered: the connection works, and a 503 "unavailable" (or close 4000) would hide a bug."""
    assert not is_outage(error)
    assert not is_outage(_as_django_raises(error))
    try:
        raise RuntimeError("while handling a frame") from _as_django_raises(error)
    except RuntimeError as outer:
        assert not is_outage(outer)


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
