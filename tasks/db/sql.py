"""pymysql connections from the controller to the database nodes, checked and short-timed.

In lab mode every connection is refused unless the address is routed through the lab bridge
(``tasks.core.guard``), so lab traffic never leaves the machine, and connections are plain.
On real machines every connection is TLS, checked against the controller's database CA
(``tasks.core.tls``) and the address dialled (the certificate's IP SAN); the admin and
replication accounts REQUIRE SSL. Connections use short timeouts and autocommit. Accounts:
the controller's admin (``tp5admin``), the replication account (``repl``) and the
application's (named after the app).

A run that asks the db nodes many times (the deploy: the admin account, the actual primary,
the node's check, the database check) gives its ``DbTarget`` an ``AdminLinks``
(``tasks.db.links.for_run``): then ``connect_admin`` hands out one admin connection per node
for the whole run, once that node's admin account is complete. ``query`` runs a statement
refused for lack of a privilege once more on a new session of such a connection (MariaDB
fixes a session's privileges when it logs in).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import pymysql
import pymysql.cursors
from nornir.core.inventory import Host

from tasks.core import tls
from tasks.core.guard import check_addresses, route_source
from tasks.core.secrets import DbSecrets, db_secrets
from tasks.core.settings import Settings
from tasks.deploy.errors import describe_error

if TYPE_CHECKING:
    from tasks.db.links import AdminLinks

ADMIN_USER = "tp5admin"
REPL_USER = "repl"
CONNECT_TIMEOUT = 3
READ_TIMEOUT = 30
# A run's shared admin connections: every statement of a run is short (the longest, a
# MASTER_GTID_WAIT, is cut to 5 s), so this bounds a hung node.
LINK_READ_TIMEOUT = 10
# Where the admin account may connect from on real machines (the lab uses the bridge address).
ADMIN_FROM_ENV = "TP5_DB_ADMIN_FROM"
# Access denied to a database (1044), to a table (1142), a privilege needed (1227).
PRIVILEGE_ERRORS = frozenset({1044, 1142, 1227})
# A MariaDB account host part: an address, a host name or a pattern, nothing that quotes.
ADMIN_FROM = re.compile(r"[A-Za-z0-9.%_:-]{1,255}")


class DbError(Exception):
    """A database step failed; the message names the host and the cause."""


@dataclass(frozen=True)
class DbTarget:
    """Where and how the controller reaches the databases: built once from the Settings
    (``Settings.is_lab`` decides lab or real machines) and passed to the tasks."""

    is_lab: bool
    bridge: str
    bridge_address: str
    links: AdminLinks | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> DbTarget:
        return cls(is_lab=settings.is_lab, bridge=settings.lab_bridge,
                   bridge_address=settings.lab_bridge_address)

    @property
    def tls(self) -> bool:
        """Real machines: TLS for the controller's connections and replication, and the
        admin and replication accounts REQUIRE SSL. The lab keeps plain connections."""
        return not self.is_lab

    def close_links(self) -> None:
        """Close the run's shared admin connections (none without ``links``)."""
        if self.links is not None:
            self.links.close()

    def making_account(self, host: Host) -> AbstractContextManager[None]:
        """Around the making of `host`'s admin account: the run opens no admin session to it
        meanwhile (one would keep the privileges it logged in with), and may keep one for
        the run after it (``AdminLinks.making_account``)."""
        if self.links is None:
            return nullcontext()
        return self.links.making_account(host.name)

    def account_ready(self, host: Host,
                      conn: pymysql.connections.Connection) -> pymysql.connections.Connection:
        """`host`'s admin account was found complete: the run may keep an admin connection to
        it from now on; `conn` (from ``connect_admin``) becomes that one when none is kept
        yet. Returns the connection to use."""
        if self.links is None:
            return conn
        return self.links.account_ready(host.name, conn)

    @cached_property
    def secrets(self) -> DbSecrets:
        """The passwords: the lab's generated files, or the environment (read on first use)."""
        return db_secrets("lab" if self.is_lab else "real")

    def admin_from(self, address: str) -> str:
        """The host part of the admin account on the db node at `address`: the controller's
        lab address; on real machines the controller's own address on the route to that node,
        or what TP5_DB_ADMIN_FROM says (the explicit way to allow more, e.g. `10.0.0.%`)."""
        if self.is_lab:
            return str(ipaddress.ip_interface(self.bridge_address).ip)
        explicit = os.environ.get(ADMIN_FROM_ENV)
        if explicit is not None:
            if not ADMIN_FROM.fullmatch(explicit):
                raise DbError(f"{ADMIN_FROM_ENV}={explicit!r}: not an address, host name or "
                              "MariaDB host pattern (letters, digits, '.', '-', ':', '%', '_')")
            return explicit
        source = route_source(address)
        if source is None:
            raise DbError(f"cannot tell this controller's address toward {address} (no route); "
                          f"set {ADMIN_FROM_ENV} to where the admin account may connect from")
        return source


def native_password_hash(password: str) -> str:
    """mysql_native_password hash ('*' + upper hex SHA1(SHA1(password))), as PASSWORD() gives.

    Accounts are created with this hash so that no plain password reaches a node's logs.
    """
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def connect(
    target: DbTarget, address: str, port: int, user: str, password: str,
    name: str | None = None, database: str | None = None, read_timeout: float = READ_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    kind: type[pymysql.connections.Connection] = pymysql.connections.Connection,
) -> pymysql.connections.Connection:
    """Open an autocommit pymysql connection (dict rows): after the lab route check and
    plain in the lab; TLS verified against the CA and `address` otherwise (`kind`: the
    connection class, ``SharedConnection`` for a run's links).

    The login is part of connecting: the server's greeting and the authentication are
    bounded by `connect_timeout` too (a frozen mariadbd accepts the TCP connection, its
    kernel does, but never greets), the statements afterwards by `read_timeout`."""
    label = name or address
    refuse_off_lab(target, address, label)
    login = min(read_timeout, connect_timeout)
    try:
        conn = kind(
            host=address, port=port, user=user, password=password, database=database,
            connect_timeout=connect_timeout, read_timeout=login, write_timeout=login,
            autocommit=True, cursorclass=pymysql.cursors.DictCursor,
            **tls_options(target, label),
        )
    except pymysql.MySQLError as exc:
        raise DbError(f"{label}: cannot connect to {address}:{port} as {user}: "
                      f"{describe_error(exc)}") from exc
    # pymysql applies a changed timeout at the next read or write (no public setter).
    conn._read_timeout = conn._write_timeout = read_timeout  # noqa: SLF001
    return conn


def refuse_off_lab(target: DbTarget, address: str, label: str) -> None:
    """In the lab, raise DbError unless `address` is reached through the lab bridge."""
    if target.is_lab:
        problems = check_addresses(target.bridge, [address])
        if problems:
            raise DbError(f"{label}: refusing to connect to {address}: " + "; ".join(problems))


def tls_options(target: DbTarget, label: str) -> dict[str, Any]:
    """pymysql's TLS arguments: none in the lab (plain, as the lab's servers have no TLS);
    on real machines TLS required, the server's certificate checked against the CA and its
    name against the address dialled (pymysql then refuses a server without TLS)."""
    if not target.tls:
        return {"ssl_disabled": True}
    ca = tls.ca_file()
    if not ca.is_file():
        raise DbError(f"{label}: no database CA at {ca}: deploy the db tier first (it makes "
                      "the CA and the nodes' certificates)")
    return {"ssl_ca": str(ca), "ssl_verify_cert": True, "ssl_verify_identity": True}


def connect_admin(target: DbTarget, host: Host, read_timeout: float = READ_TIMEOUT,
                  connect_timeout: float = CONNECT_TIMEOUT) -> pymysql.connections.Connection:
    """The admin connection to an inventory db host: a new one, or the run's one when the
    target has ``links`` (tasks.db.links; its timeouts are then ``LINK_READ_TIMEOUT`` and
    ``CONNECT_TIMEOUT``)."""
    if target.links is not None:
        return target.links.get(host)
    return connect(target, host.hostname, int(host["db_port"]), ADMIN_USER,
                   target.secrets.admin, name=host.name, read_timeout=read_timeout,
                   connect_timeout=connect_timeout)


def error_code(exc: BaseException) -> int | None:
    """The server's error number of a pymysql error, if any."""
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


T = TypeVar("T")


def retry_privilege_error(run: Callable[[], T], renew: Callable[[], None] | None) -> T:
    """``run()``; when the server refuses it for lack of a privilege (PRIVILEGE_ERRORS) and
    the connection can be renewed, renew it (a new session, with the account's privileges
    as they are now) and run it once more; any other error, or a second refusal, is raised.
    The server refuses before doing anything, so running the statement again is safe."""
    try:
        return run()
    except pymysql.MySQLError as exc:
        if renew is None or error_code(exc) not in PRIVILEGE_ERRORS:
            raise
    renew()
    return run()


def query(conn: pymysql.connections.Connection, sql: str,
          args: tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
    """Run one statement and return its rows (dicts). On a connection of a run's
    ``AdminLinks`` (they have ``renew``), a privilege refusal gets one new session."""
    def run() -> list[dict[str, Any]]:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    return retry_privilege_error(run, getattr(conn, "renew", None))


def scalar(conn: pymysql.connections.Connection, sql: str,
           args: tuple[Any, ...] | None = None) -> Any:
    """The first column of the first row (None when no row)."""
    rows = query(conn, sql, args)
    return next(iter(rows[0].values())) if rows else None
