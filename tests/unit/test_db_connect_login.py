"""Connecting includes the login: a server that accepts the TCP connection but never greets
(a frozen mariadbd: its kernel still accepts) fails within the connect timeout, not the much
longer statement timeout (the failover reads the frozen node's status before promoting)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pymysql
import pytest

from tasks.db import sql
from tasks.db.links import SharedConnection
from tasks.db.sql import DbError, DbTarget


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A listening socket: the kernel completes the handshake; nobody ever writes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield server
    server.close()


def failure_within_bound(login: Callable[[], object]) -> BaseException | None:
    """What `login()` raised, run in a thread bounded at 60 s (a bound, not a measure: the
    read timeout alone would be an hour); None if it is still waiting then."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            login()
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    return None if thread.is_alive() else outcome[0]


def test_a_server_that_never_greets_fails_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch, silent: socket.socket,
) -> None:
    monkeypatch.setattr(sql, "check_addresses", lambda _bridge, _addresses: [])
    failure = failure_within_bound(lambda: sql.connect(
        DbTarget(True, "tp5br0", "10.5.1.1"), "127.0.0.1", silent.getsockname()[1],
        "tp5admin", "x", read_timeout=3600, connect_timeout=0.3))
    assert failure is not None, "the login waited for the statement timeout"
    assert isinstance(failure, DbError) and "cannot connect to 127.0.0.1" in str(failure)


def test_a_renewed_login_is_bounded_by_the_connect_timeout_too(silent: socket.socket) -> None:
    """A run's shared connection logs in again (after a privilege error): the new greeting
    is bounded by the connect timeout, and its statements keep the long read timeout."""
    conn = SharedConnection(host="127.0.0.1", port=silent.getsockname()[1], user="tp5admin",
                            password="x", connect_timeout=0.3, read_timeout=3600,
                            defer_connect=True)
    failure = failure_within_bound(conn.renew)
    assert failure is not None, "the renewed login waited for the statement timeout"
    assert isinstance(failure, pymysql.err.OperationalError)
    assert (conn._read_timeout, conn._write_timeout) == (3600, None)  # noqa: SLF001
