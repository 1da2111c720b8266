"""A deploy run's admin connections (tasks.db.links) and the privilege-refusal rule of
``query`` (tasks.db.sql), with fake connections: no session is opened while the run makes a
node's admin account, none is kept before that account is complete, and a statement refused
for lack of a privilege gets one new session."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from nornir.core.inventory import Host

from tasks.db.links import AdminLinks, SharedConnection
from tasks.db.sql import DbError, query, retry_privilege_error

DB1 = Host("db1", hostname="10.5.1.211")
WAIT = 5.0  # s a test waits for another thread at most (never reached when it passes)


# --- the privilege-refusal rule ----------------------------------------------------------

class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, args: Any) -> None:
        self.conn.ran.append(sql)
        if self.conn.refusals:
            code = self.conn.refusals.pop(0)
            raise pymysql.err.OperationalError(code, "Access denied; you need (at least one "
                                                     "of) the SLAVE MONITOR privilege(s)")

    def fetchall(self) -> list[dict[str, Any]]:
        return [{"Slave_IO_Running": "Yes"}]


class FakeConn:
    """A connection whose next statements are refused with `refusals` (error numbers)."""

    def __init__(self, refusals: list[int]) -> None:
        self.refusals = refusals
        self.ran: list[str] = []

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)


class RenewableConn(FakeConn):
    """A run's connection: ``renew`` logs in again (counted)."""

    def __init__(self, refusals: list[int]) -> None:
        super().__init__(refusals)
        self.renewed = 0

    def renew(self) -> None:
        self.renewed += 1


@pytest.mark.parametrize("code", [1227, 1142, 1044])
def test_a_privilege_refusal_gets_one_new_session(code: int) -> None:
    conn = RenewableConn([code])
    assert query(conn, "SHOW SLAVE STATUS") == [{"Slave_IO_Running": "Yes"}]  # type: ignore[arg-type]
    assert conn.renewed == 1 and conn.ran == ["SHOW SLAVE STATUS"] * 2


def test_a_second_refusal_fails_and_other_errors_are_not_retried() -> None:
    twice = RenewableConn([1227, 1227])
    with pytest.raises(pymysql.err.OperationalError) as refused:
        query(twice, "SHOW SLAVE STATUS")  # type: ignore[arg-type]
    assert refused.value.args[0] == 1227 and twice.renewed == 1 and len(twice.ran) == 2
    read_only = RenewableConn([1290])  # not a privilege: the statement is not run again
    with pytest.raises(pymysql.err.OperationalError):
        query(read_only, "INSERT INTO t VALUES (1)")  # type: ignore[arg-type]
    assert read_only.renewed == 0 and len(read_only.ran) == 1
    plain = FakeConn([1227])  # a connection of no run: nothing to renew
    with pytest.raises(pymysql.err.OperationalError):
        query(plain, "SHOW SLAVE STATUS")  # type: ignore[arg-type]
    assert len(plain.ran) == 1


def test_a_failed_renewal_is_the_error() -> None:
    def renew() -> None:
        raise DbError("db1: cannot connect")

    def refused() -> None:
        raise pymysql.err.OperationalError(1227, "Access denied")

    with pytest.raises(DbError, match="cannot connect"):
        retry_privilege_error(refused, renew)


def test_renew_runs_its_hook_then_logs_in_again_in_place() -> None:
    link = SharedConnection(host="127.0.0.1", defer_connect=True)
    steps: list[str] = []
    link.before_renew = lambda: steps.append("wait and check the route")
    link.connect = lambda sock=None: steps.append("log in")  # type: ignore[method-assign]
    link.renew()
    assert steps == ["wait and check the route", "log in"]


# --- the run's connections ---------------------------------------------------------------

class FakeLink(SharedConnection):
    """A run's connection without a server: `number` is the order it was opened in."""

    def __init__(self, number: int) -> None:
        self.turn = threading.Lock()
        self.kept = False
        self.before_renew = lambda: None
        self.number = number
        self.up = True
        self.ended = False

    def alive(self) -> bool:
        return self.up

    def end(self) -> None:
        self.ended = True


class Opener:
    """Opens FakeLinks; with `gate`, each login waits for it (a login in flight)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.links: list[FakeLink] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, host: Host) -> FakeLink:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        link = FakeLink(len(self.links))
        self.links.append(link)
        return link


@pytest.fixture
def making() -> Iterator[tuple[AdminLinks, Opener, threading.Event, threading.Event]]:
    """Links whose db1 account is being made by another thread until `finish` is set;
    `begun` is set once the making has started."""
    opener = Opener()
    links = AdminLinks(opener)
    begun, finish = threading.Event(), threading.Event()

    def make() -> None:
        with links.making_account("db1"):
            begun.set()
            assert finish.wait(WAIT)

    maker = threading.Thread(target=make)
    maker.start()
    assert begun.wait(WAIT)
    try:
        yield links, opener, begun, finish
    finally:
        finish.set()
        maker.join(WAIT)


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any], threading.Event]:
    out: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # the test reads it
            out.append(exc)
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out, done


def test_no_session_is_opened_while_the_account_is_made(making: Any) -> None:
    links, opener, _, finish = making
    thread, out, done = _in_thread(lambda: links.get(DB1))
    assert not done.wait(0.2)  # still waiting: no login during the making
    assert opener.links == []
    finish.set()
    assert done.wait(WAIT)
    thread.join()
    link = out[0]
    # Made by the run: complete, so this one is kept for the run.
    assert link is opener.links[0] and link.kept and links.opened == 1
    assert links.get(DB1) is link


def test_the_wait_for_an_account_being_made_is_bounded() -> None:
    links = AdminLinks(Opener(), account_wait=0.05)
    with links.making_account("db1"):
        thread, out, done = _in_thread(lambda: links.get(DB1))
        assert done.wait(WAIT)
        thread.join()
    assert isinstance(out[0], DbError) and "still being made" in str(out[0])


def test_the_making_waits_for_a_login_in_flight() -> None:
    gate = threading.Event()
    opener = Opener(gate)
    links = AdminLinks(opener)
    getter, got, _ = _in_thread(lambda: links.get(DB1))
    assert opener.entered.wait(WAIT)  # the login is under way
    order: list[str] = []

    def make() -> None:
        with links.making_account("db1"):
            order.append("making")

    maker, _, made = _in_thread(make)
    assert not made.wait(0.2)  # the making waits for that login
    order.append("login done")
    gate.set()
    assert made.wait(WAIT)
    getter.join()
    maker.join()
    assert order == ["login done", "making"]
    assert not got[0].kept  # opened before the account was known complete


def test_nothing_is_kept_before_the_account_is_known_complete() -> None:
    opener = Opener()
    links = AdminLinks(opener)
    first, second = links.get(DB1), links.get(DB1)
    assert first is not second and not first.kept and links.opened == 0
    second.close()
    assert second.ended  # the caller's own: closed for real
    # Its grants read current: the connection that read them is kept for the run.
    assert links.account_ready("db1", first) is first and first.kept and links.opened == 1
    first.close()
    assert not first.ended and links.get(DB1) is first
    links.close()
    assert first.ended


def test_a_failed_making_keeps_nothing() -> None:
    links = AdminLinks(Opener())
    with pytest.raises(RuntimeError), links.making_account("db1"):
        raise RuntimeError("ssh failed")
    assert not links.get(DB1).kept and links.opened == 0


def test_a_dead_link_is_replaced_and_closed_with_the_run() -> None:
    opener = Opener()
    links = AdminLinks(opener)
    old = links.account_ready("db1", links.get(DB1))
    old.up = False  # the node restarted
    new = links.get(DB1)
    assert new is not old and new.kept and links.opened == 2
    links.close()
    assert old.ended and new.ended


def test_a_renewal_waits_for_the_making_and_checks_the_route() -> None:
    checked: list[str] = []
    links = AdminLinks(Opener(), check_route=lambda host: checked.append(host.name))
    link = links.get(DB1)  # a session from before the making (as another host's survey's)
    begun, finish = threading.Event(), threading.Event()

    def make() -> None:
        with links.making_account("db1"):
            begun.set()
            assert finish.wait(WAIT)

    maker, _, _ = _in_thread(make)
    assert begun.wait(WAIT)
    renewal, _, done = _in_thread(link.before_renew)
    assert not done.wait(0.2) and checked == []  # no new login while the account is made
    finish.set()
    assert done.wait(WAIT)
    renewal.join()
    maker.join()
    assert checked == ["db1"]
