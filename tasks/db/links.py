"""A run's admin connections: one per db node for the whole run (``for_run``).

The deploy asks the db nodes many times (the admin account, the actual primary, each
node's check, the database check); with a ``DbTarget`` from ``for_run``, ``connect_admin``
(tasks.db.sql) hands out the node's ``SharedConnection``: checked alive each time, one
statement at a time across the run's threads, closed when the run ends.

MariaDB fixes a session's global privileges when it logs in. The deploy makes a node's admin
account over SSH (CREATE USER, then its GRANT: tasks.db.deploy); a session that logged in
between the two lacks the privileges for its whole life: another host's survey that did so
failed on its next statement (SHOW SLAVE STATUS: error 1227), and kept for the run it would
fail every later user. So:

- while the run makes a node's account (``making_account``), no admin session to that node
  is opened: ``get`` waits for the end (bounded), and the making waits for a login already
  in flight;
- a connection is kept for the run only once the node's account is known complete (made
  by the run, or its grants read current: ``account_ready``); before, every ``get`` opens
  one that its user closes;
- a statement refused for lack of a privilege (tasks.db.sql.PRIVILEGE_ERRORS) gets one new
  session in place (``SharedConnection.renew``, after any making of that account) and runs
  again (tasks.db.sql.query), e.g. a session opened while another process made the account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, cast

import pymysql
import pymysql.cursors
from nornir.core.inventory import Host

from tasks.db.sql import (
    ADMIN_USER,
    LINK_READ_TIMEOUT,
    DbError,
    DbTarget,
    connect,
    refuse_off_lab,
)

ACCOUNT_WAIT = 60.0  # s a connection waits at most while the run makes the node's account


class _TurnCursor(pymysql.cursors.DictCursor):
    """A dict cursor that holds its ``SharedConnection`` for its ``with`` block."""

    def __enter__(self) -> _TurnCursor:
        self.connection.turn.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        turn = self.connection.turn
        try:
            super().__exit__(*exc_info)
        finally:
            turn.release()


class SharedConnection(pymysql.connections.Connection):
    """An admin connection of a run's ``AdminLinks``: each statement (a ``with
    conn.cursor()`` block, as ``query`` runs it) has it alone. ``kept``: it serves the whole
    run, and ``close`` leaves it open (``end`` closes it); otherwise ``close`` closes it."""

    def __init__(self, **kwargs: Any) -> None:
        self.turn = threading.Lock()
        self.kept = False
        self.before_renew: Callable[[], None] = lambda: None
        super().__init__(**{**kwargs, "cursorclass": _TurnCursor})

    def close(self) -> None:
        if not self.kept:
            self.end()

    def alive(self) -> bool:
        """The server still answers on this connection (one round trip)."""
        try:
            with self.turn:
                self.ping(reconnect=False)
        except pymysql.MySQLError:
            return False
        return True

    def renew(self) -> None:
        """Log in again in place of this session (the account's privileges as they are
        now); ``before_renew`` first (waits while the run makes the account, checks the
        route)."""
        self.before_renew()
        with self.turn:
            if self.open:
                super().close()
            self.login()

    def login(self) -> None:
        """pymysql's connect, its greeting and authentication bounded by the connect timeout
        (as the first login, tasks.db.sql.connect: a frozen mariadbd accepts the TCP
        connection but never greets), the statements afterwards by the read timeout."""
        read, write = self._read_timeout, self._write_timeout
        bound = self.connect_timeout if read is None else min(read, self.connect_timeout)
        self._read_timeout = self._write_timeout = bound
        try:
            self.connect()
        finally:
            self._read_timeout, self._write_timeout = read, write

    def end(self) -> None:
        with self.turn:
            if self.open:
                super().close()


class AdminLinks:
    """A run's admin connections, per db node (see the module's docstring).

    `open_link`: opens a new connection to a host; `check_route`: raises unless the host may
    be dialled (the lab route check, before a renewed login). ``opened``: connections kept
    for the run.
    """

    def __init__(self, open_link: Callable[[Host], SharedConnection],
                 check_route: Callable[[Host], None] = lambda host: None,
                 account_wait: float = ACCOUNT_WAIT) -> None:
        self._open = open_link
        self._check_route = check_route
        self._wait = account_wait
        self._links: dict[str, SharedConnection] = {}
        self._retired: list[SharedConnection] = []
        self._making: dict[str, threading.Event] = {}
        self._ready: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.opened = 0

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def settled(self, name: str) -> None:
        """Return once the run is not making `name`'s admin account (DbError after the
        account wait)."""
        with self._lock(name):
            making = self._making.get(name)
        if making is not None and not making.wait(self._wait):
            raise DbError(f"{name}: its admin account was still being made after "
                          f"{self._wait:.0f} s")

    def get(self, host: Host) -> SharedConnection:
        """The run's connection to `host` (kept once its account is complete), or a new one
        for the caller alone before that."""
        while True:
            self.settled(host.name)
            with self._lock(host.name):
                if host.name not in self._making:
                    return self._hand_out(host)

    def _hand_out(self, host: Host) -> SharedConnection:
        name = host.name
        link = self._links.pop(name, None)
        if link is not None:
            if link.alive():
                self._links[name] = link
                return link
            self._retired.append(link)
        new = self._open(host)
        new.before_renew = lambda: self._before_renew(host)
        if name in self._ready:
            self._keep(name, new)
        return new

    def _before_renew(self, host: Host) -> None:
        self.settled(host.name)
        self._check_route(host)

    def _keep(self, name: str, link: SharedConnection) -> None:
        link.kept = True
        self._links[name] = link
        with self._guard:  # the per-node locks do not cover this count
            self.opened += 1

    def _drop(self, name: str) -> None:
        link = self._links.pop(name, None)
        if link is not None:
            self._retired.append(link)

    @contextmanager
    def making_account(self, name: str) -> Iterator[None]:
        """Around the making of `name`'s admin account: no admin session to it is opened
        meanwhile; after it succeeded, the run may keep one."""
        done = threading.Event()
        with self._lock(name):  # a login in flight to `name` ends first
            self._making[name] = done
            self._drop(name)
        made = False
        try:
            yield
            made = True
        finally:
            with self._lock(name):
                del self._making[name]
                self._drop(name)
                if made:
                    self._ready.add(name)
            done.set()

    def account_ready(self, name: str,
                      conn: pymysql.connections.Connection) -> pymysql.connections.Connection:
        """`name`'s admin account is complete: connections to it are kept from now on, this
        one first when it is a connection of this run and none is kept yet."""
        with self._lock(name):
            self._ready.add(name)
            if isinstance(conn, SharedConnection) and not conn.kept \
                    and name not in self._links:
                self._keep(name, conn)
        return conn

    def close(self) -> None:
        """Close the connections kept for the run (and those replaced during it)."""
        with self._guard:
            links = list(self._links.values()) + self._retired
            self._links.clear()
            self._retired.clear()
        for link in links:
            link.end()


def for_run(target: DbTarget) -> DbTarget:
    """`target` with its run's ``AdminLinks``; the caller ends the run with
    ``target.close_links()``."""
    base = replace(target, links=None)

    def open_link(host: Host) -> SharedConnection:
        return cast(SharedConnection, connect(
            base, host.hostname, int(host["db_port"]), ADMIN_USER, base.secrets.admin,
            name=host.name, read_timeout=LINK_READ_TIMEOUT, kind=SharedConnection))

    def check_route(host: Host) -> None:
        refuse_off_lab(base, str(host.hostname), host.name)

    return replace(target, links=AdminLinks(open_link, check_route))
