"""Verify the database tier with SQL (pymysql from the controller).

- ``check_db_node`` (task, writes nothing): the node is right for its actual role (the
  per-host check of the deploy): its live durability settings, read-only unless it is the
  one primary, a replica following the actual primary with both threads running, no error,
  no lag, no divergence. A replica behind the primary (checked right after a change there)
  first has ``CATCH_UP_WAIT`` s to apply the primary's position: only then is its lag a
  problem (both checks).
- ``verify_db`` (task): on a replica, a marker row written on the actual primary read here
  within a bounded time (delay measured), a write refused (read_only; and the admin account
  really lacks SUPER / READ_ONLY ADMIN, or the refusal would prove nothing); on the primary,
  writable with the binary log on and semi-sync on with a replica acknowledging. The deploy
  runs it once its hosts are done (its database check), as ``db_status.py --verify``.

The state itself (``NodeStatus``, ``cluster_status``, ``db_status``, ``print_cluster``) is
``tasks.db.status``; the actual primary is found by asking every node of the inventory. Both
checks record a tier they see healthy as in sync (``tasks.db.insync``: what ``failover``
promotes from).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pymysql
from nornir.core.inventory import Host, Inventory
from nornir.core.task import Result, Task

from tasks.core.inventory import tier_hosts
from tasks.db.deploy import database_name
from tasks.db.facts import forbidden_admin_privileges
from tasks.db.insync import record_in_sync
from tasks.db.sql import DbError, DbTarget, connect_admin, query, scalar
from tasks.db.status import (  # noqa: F401  (re-exported: the status view's names)
    ClusterStatus,
    NodeStatus,
    cluster_from_results,
    cluster_status,
    db_status,
    pending_catch_up,
    print_cluster,
    read_node_status,
)
from tasks.deploy.errors import describe_error

MARKER_TIMEOUT = 5.0
CATCH_UP_WAIT = 10.0  # s a replica behind the primary has to catch up before it is a problem
READ_ONLY_ERROR = 1290


def tier_statuses(target: DbTarget, inventory: Inventory) -> list[NodeStatus]:
    """Every db node's NodeStatus (an unreachable one carries its error).

    A writable node's binary-log position is read again after every node was read: writes go
    on meanwhile (the app, the deploy's own checks), so a replica read after an earlier read
    of its primary could look ahead of it and be taken for a diverged node."""
    nodes: list[NodeStatus] = []
    conns: dict[str, pymysql.connections.Connection] = {}
    try:
        for host in tier_hosts(inventory, "db"):
            try:
                conns[host.name] = connect_admin(target, host, read_timeout=10)
            except DbError as exc:
                nodes.append(NodeStatus(host.name, host.hostname, str(host["db_role"]),
                                        reachable=False, error=str(exc)))
                continue
            nodes.append(read_node_status(conns[host.name], host))
        return [_binlog_read_last(n, conns[n.name]) if n.name in conns and n.read_only is False
                else n for n in nodes]
    finally:
        for conn in conns.values():
            conn.close()


def _binlog_read_last(node: NodeStatus, conn: pymysql.connections.Connection) -> NodeStatus:
    return replace(node, gtid_binlog_pos=str(scalar(conn, "SELECT @@gtid_binlog_pos") or ""))


def _own_problems(cluster: ClusterStatus, name: str) -> list[str]:
    return [p for p in cluster.problems
            if p.startswith(f"{name}: ") or p.startswith(("SPLIT BRAIN", "no node accepts"))]


# --- verification -------------------------------------------------------------------------

def write_marker(primary_conn: pymysql.connections.Connection, db: str, source: str) -> str:
    """Insert a marker row on the primary; return its token."""
    token = uuid.uuid4().hex
    query(primary_conn, f"INSERT INTO {db}.markers (token, source) VALUES (%s, %s)",
          (token, source))
    return token


def wait_marker(replica_conn: pymysql.connections.Connection, db: str, token: str,
                timeout: float) -> float | None:
    """Seconds until the marker is visible on the replica (None: not within timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if query(replica_conn, f"SELECT 1 FROM {db}.markers WHERE token = %s", (token,)):
            return time.monotonic() - started
        time.sleep(0.001)
    return None


def write_refusal(replica_conn: pymysql.connections.Connection, db: str) -> str | None:
    """Try a write on the replica; the refusal message, or None when it was accepted."""
    try:
        query(replica_conn, f"INSERT INTO {db}.markers (token, source) VALUES (%s, %s)",
              (uuid.uuid4().hex, "write-on-replica"))
    except pymysql.MySQLError as exc:
        if exc.args and exc.args[0] == READ_ONLY_ERROR:
            return describe_error(exc)
        raise
    return None


def _read_tier(target: DbTarget, inventory: Inventory, host: Host,
               semi: bool) -> tuple[ClusterStatus, NodeStatus, list[str]]:
    """The tier's state, this host's NodeStatus and the problems that concern it. A tier
    seen healthy (semi-sync included) is recorded in sync (tasks.db.insync)."""
    nodes = tier_statuses(target, inventory)
    record_in_sync(cluster_status(nodes))
    cluster = cluster_status(nodes, semi=semi)
    status = next(n for n in cluster.nodes if n.name == host.name)
    if not status.reachable:
        raise DbError(status.error)
    return cluster, status, _own_problems(cluster, host.name)


def _tier(target: DbTarget, inventory: Inventory, host: Host, semi: bool,
          catch_up: float = CATCH_UP_WAIT) -> tuple[ClusterStatus, NodeStatus, list[str]]:
    """``_read_tier``, with a replica's lag a problem only once it has had `catch_up` s to
    catch up (``pending_catch_up``): a node checked right after a change on the primary
    waits (bounded) until it has applied the primary's position, then it is read again."""
    deadline = time.monotonic() + catch_up
    while True:
        cluster, status, problems = _read_tier(target, inventory, host, semi)
        problems, position = pending_catch_up(cluster, host.name, problems)
        remaining = deadline - time.monotonic()
        if position is None or remaining <= 0:
            return cluster, status, problems
        _wait_applied(target, host, position, remaining)


def _wait_applied(target: DbTarget, host: Host, position: str, timeout: float) -> None:
    """Wait until the replica has applied `position` (MASTER_GTID_WAIT), at most `timeout`
    s and one second per statement (the connection may be the run's shared one)."""
    conn = connect_admin(target, host, read_timeout=10)
    try:
        scalar(conn, "SELECT MASTER_GTID_WAIT(%s, %s)", (position, min(1.0, timeout)))
    finally:
        conn.close()


def check_db_node(task: Task, target: DbTarget, inventory: Inventory) -> Result:
    """Nornir task: the node is right for its actual role (see the module's docstring);
    raises DbError listing the problems. Writes nothing. Result.result: its NodeStatus."""
    host = task.host
    _, status, problems = _tier(target, inventory, host, semi=False)
    if problems:
        raise DbError("; ".join(problems))
    return Result(host=host, result=status)


def verify_db(task: Task, target: DbTarget, inventory: Inventory,
              marker_timeout: float = MARKER_TIMEOUT) -> Result:
    """Nornir task: check a db host with SQL; raises DbError listing every problem.

    Result: result = {'role', 'marker_delay_s', 'write_refused', 'gtid_slave_pos', ...};
    on the actual primary {'role', 'gtid_binlog_pos', 'note'} (note: the inventory names
    another primary, '' otherwise).
    """
    host = task.host
    cluster, status, problems = _tier(target, inventory, host, semi=True)
    if status.role == "primary":
        if problems:
            raise DbError("; ".join(problems))
        return Result(host=host, result={"role": "primary",
                                         "gtid_binlog_pos": status.gtid_binlog_pos,
                                         "note": "; ".join(cluster.notes)})
    if cluster.primary is None:
        raise DbError("; ".join(problems) or f"{host.name}: no primary to verify against")
    primary = inventory.hosts[cluster.primary]
    conn = connect_admin(target, host, read_timeout=10)
    try:
        return Result(host=host, result=_verify_replica(
            conn, status, target, host, primary, database_name(host), marker_timeout,
            problems))
    finally:
        conn.close()


def _verify_replica(conn: pymysql.connections.Connection, status: NodeStatus,
                    target: DbTarget, host: Host, primary: Host, db: str,
                    marker_timeout: float, problems: list[str]) -> dict[str, object]:
    forbidden = forbidden_admin_privileges(
        str(next(iter(r.values()))) for r in query(conn, "SHOW GRANTS"))
    if forbidden:
        problems.append(f"{host.name}: the admin account has {', '.join(forbidden)}: it could "
                        "write despite read_only, so the refusal test would prove nothing")
    delay = None
    primary_conn = connect_admin(target, primary, read_timeout=10)
    try:
        token = write_marker(primary_conn, db, f"verify {host.name}")
        delay = wait_marker(conn, db, token, marker_timeout)
    finally:
        primary_conn.close()
    if delay is None:
        problems.append(f"{host.name}: the marker written on {primary.name} was not read "
                        f"here within {marker_timeout:.1f} s")
    # Never try the write on a node that is not read-only: it would land there and leave
    # the replica diverged (the survey has already named the problem).
    probe = not forbidden and status.read_only is True
    refusal = write_refusal(conn, db) if probe else None
    if probe and refusal is None:
        problems.append(f"{host.name}: a write on the replica was accepted (read_only off?)")
    if problems:
        raise DbError("; ".join(problems))
    rep = status.replica
    return {"role": "replica", "marker_delay_s": delay, "write_refused": refusal,
            "gtid_slave_pos": status.gtid_slave_pos,
            "io_running": rep.io_running if rep else None,
            "sql_running": rep.sql_running if rep else None,
            "seconds_behind": rep.seconds_behind if rep else None}
