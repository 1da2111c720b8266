"""The SQL that changes a node's role: open for writes, fence, follow a primary.

Shared by the deploy (tasks.db.deploy) and the failover runbook (tasks.db.failover).

``read_only`` itself can only be changed by an account holding READ_ONLY ADMIN, and such an
account also writes through ``read_only``: none of the framework's accounts has it. So the
two statements that open or fence a node run as the node's root over the unix socket, through
the host's SSH connection (``open_writes``, ``fence_writes``, Nornir tasks); everything else
uses the admin connection (tasks.db.sql: lab route checked first).
"""

from __future__ import annotations

import pymysql
from nornir.core.task import Result, Task
from pymysql.converters import escape_string

from tasks.core.remote import run_command
from tasks.core.tls import NODE_CA
from tasks.db.sql import REPL_USER, DbError, query, scalar

HEARTBEAT = 1  # MASTER_HEARTBEAT_PERIOD (s); slave_net_timeout is 4 s (the settings)
CONNECT_RETRY = 1  # MASTER_CONNECT_RETRY (s)


def semi_sync_master(conn: pymysql.connections.Connection, on: bool) -> bool:
    """Turn the node's primary side of semi-sync on or off; True when it changed.

    Off releases commits waiting for an acknowledgement with OK: only ``degrade`` (an
    explicit, recorded decision) and a demotion (nothing waits: the node is fenced and its
    replica caught up) turn it off.
    """
    if bool(scalar(conn, "SELECT @@GLOBAL.rpl_semi_sync_master_enabled")) == on:
        return False
    query(conn, f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if on else 'OFF'}")
    return True


FENCE_LOCK_WAIT = 5  # s: SET GLOBAL read_only waits for commits that wait for their ack
MYSQL_CLIENT = "mariadb --batch --skip-column-names"


def root_sql(task: Task, sql: str, timeout: float = 30.0) -> str:
    """Run SQL as the node's root (unix socket) over the host's SSH connection; its output.
    Raises DbError naming the host and MariaDB's message."""
    done = run_command(task, MYSQL_CLIENT, stdin=sql, timeout=timeout)
    if not done.ok:
        raise DbError(f"{task.host.name}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def root_command(task: Task, command: str, timeout: float = 90.0) -> Result:
    """Nornir task: a shell command as root on the node (DbError naming it on failure)."""
    done = run_command(task, command, timeout=timeout)
    if not done.ok:
        raise DbError(f"{task.host.name}: `{command}`: "
                      f"{(done.stderr or done.stdout).strip()[-300:]}")
    return Result(host=task.host, result=done.stdout)


def open_writes(task: Task, semi_sync: bool) -> Result:
    """Nornir task: make the node the primary: the semi-sync primary side first (when
    asked: a replica will acknowledge), then read_only = OFF. The caller has checked that
    no other node accepts writes."""
    semi = "ON" if semi_sync else "OFF"
    root_sql(task, f"SET GLOBAL rpl_semi_sync_master_enabled = {semi};\n"
                   "SET GLOBAL read_only = OFF;\n")
    return Result(host=task.host, changed=True,
                  result=f"read_only OFF, semi-sync primary side {semi}")


def fence_writes(task: Task, lock_wait: int = FENCE_LOCK_WAIT) -> Result:
    """Nornir task: read_only = ON (no new write commits here). It waits (at most
    `lock_wait` s, then fails: nothing changed) for commits waiting for their ack."""
    root_sql(task, f"SET SESSION lock_wait_timeout = {int(lock_wait)};\n"
                   "SET GLOBAL read_only = ON;\n", timeout=lock_wait + 10)
    return Result(host=task.host, changed=True, result="read_only ON")


def _lit(value: str) -> str:
    return "'" + escape_string(value) + "'"


def master_ssl_sql(tls: bool) -> str:
    """The CHANGE MASTER options of the replication channel's TLS, always spelled out (a
    CHANGE MASTER keeps the options it does not name): TLS with the primary's certificate
    checked against the CA the deploy pushed and the address dialled (real machines), or
    plain (the lab)."""
    if tls:
        return (f"MASTER_SSL = 1, MASTER_SSL_CA = {_lit(NODE_CA)}, "
                "MASTER_SSL_VERIFY_SERVER_CERT = 1")
    return "MASTER_SSL = 0, MASTER_SSL_CA = '', MASTER_SSL_VERIFY_SERVER_CERT = 0"


def change_master_sql(address: str, port: int, password: str, demote: bool,
                      tls: bool = False) -> str:
    """STOP SLAVE, then CHANGE MASTER TO the primary by GTID (slave_pos), heartbeat 1 s,
    over verified TLS when `tls` (``master_ssl_sql``).

    `demote`: ``MASTER_DEMOTE_TO_SLAVE=1``: the node's own binlog position becomes its
    replication position (an old primary rejoining: it then asks for what comes after what
    it wrote, and a diverged node fails with error 1236 instead of forking silently).
    """
    return ("STOP SLAVE;\n"
            f"CHANGE MASTER TO MASTER_HOST = {_lit(address)}, MASTER_PORT = {int(port)}, "
            f"MASTER_USER = {_lit(REPL_USER)}, MASTER_PASSWORD = {_lit(password)}, "
            f"MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = {CONNECT_RETRY}, "
            f"MASTER_HEARTBEAT_PERIOD = {HEARTBEAT}, {master_ssl_sql(tls)}"
            + (", MASTER_DEMOTE_TO_SLAVE = 1" if demote else "") + ";\n")


def follow_primary(task: Task, address: str, port: int, password: str,
                   demote: bool = True, tls: bool = False) -> Result:
    """Nornir task: point the node's replication at a primary (``change_master_sql``) as
    root: the demotion writes ``gtid_slave_pos``, which read_only refuses to the admin.
    `tls`: over verified TLS (real machines). Replication stays stopped (START SLAVE is the
    caller's)."""
    root_sql(task, change_master_sql(address, port, password, demote, tls))
    return Result(host=task.host, changed=True, result=f"follows {address}:{port}")


def heartbeat_period(conn: pymysql.connections.Connection) -> float:
    """The replication's heartbeat period (s) as configured (0 when none)."""
    rows = query(conn, "SHOW GLOBAL STATUS LIKE 'Slave_heartbeat_period'")
    return float(rows[0]["Value"]) if rows else 0.0
