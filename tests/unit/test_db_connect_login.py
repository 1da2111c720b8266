"""Connecting includes the login: a server that accepts the TCP connection but never greets
(a frozen mariadbd: its kernel still accepts) fails within the connect timeout, not the much
longer statement timeout (the failover reads the frozen node's status before promoting)."""

from __future__ import annotations

import socket
import threading

import pymysql
import pytest

from tasks.db import sql
from tasks.db.links import SharedConnection
from tasks.db.sql import DbError, DbTarget


def test_a_server_that_never_greets_fails_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sql, "check_addresses", lambda _bridge, _addresses: [])
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # the kernel completes the handshake; nobody ever writes
    outcome: list[BaseException] = []

    def dial() -> None:
        try:
            sql.connect(DbTarget(True, "tp5br0", "10.5.1.1"), "127.0.0.1",
                        silent.getsockname()[1], "tp5admin", "x", read_timeout=3600,
                        connect_timeout=0.3)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            outcome.append(exc)

    thread = threading.Thread(target=dial, daemon=True)
    thread.start()
    thread.join(timeout=60)  # a bound, not a measure: read_timeout alone would be an hour
    silent.close()
    assert not thread.is_alive(), "the login waited for the statement timeout"
    assert len(outcome) == 1 and isinstance(outcome[0], DbError)
    assert "cannot connect to 127.0.0.1" in str(outcome[0])


def test_a_renewed_login_is_bounded_by_the_connect_timeout_too() -> None:
    """A run's shared connection logs in again (after a privilege error): the new greeting
    is bounded by the connect timeout, and its statements keep the long read timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    conn = SharedConnection(host="127.0.0.1", port=silent.getsockname()[1], user="tp5admin",
                            password="x", connect_timeout=0.3, read_timeout=3600,
                            defer_connect=True)
    outcome: list[BaseException] = []

    def renew() -> None:
        try:
            conn.renew()
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            outcome.append(exc)

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    thread.join(timeout=60)  # a bound, not a measure: read_timeout alone would be an hour
    silent.close()
    assert not thread.is_alive(), "the renewed login waited for the statement timeout"
    assert len(outcome) == 1 and isinstance(outcome[0], pymysql.err.OperationalError)
    assert (conn._read_timeout, conn._write_timeout) == (3600, None)  # noqa: SLF001
