"""Verify the database tier with SQL (pymysql from the controller) and show its state.

- ``db_status`` (task): one node's state as a ``NodeStatus`` (role, read_only, GTID positions,
  replication threads, lag, last error); ``cluster_status`` (pure) puts the nodes together
  and lists what is wrong; ``print_cluster`` shows it as a rich table.
- ``check_db_node`` (task, writes nothing): the node's own state is right for its role (the
  per-host check of the deploy).
- ``verify_db`` (task): on a replica, replication healthy (both threads, no error, lag 0),
  a marker row written on the primary read here within a bounded time (delay measured), a
  write refused (read_only; and the admin account really lacks SUPER / READ_ONLY ADMIN, or
  the refusal would prove nothing); on the primary, writable with the binary log on. The
  deploy runs it once its hosts are done (its database check), as ``db_status.py --verify``.

The tasks take the ``DbTarget`` (built once from the Settings) and, where the primary must be
found, the whole inventory (the run may be filtered to one host).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pymysql
from nornir.core.inventory import Host, Inventory
from nornir.core.task import AggregatedResult, Result, Task
from rich.console import Console
from rich.table import Table

from tasks.db.deploy import database_name, replica_source
from tasks.db.facts import ReplicaStatus, forbidden_admin_privileges, parse_slave_status
from tasks.db.sql import DbError, DbTarget, connect_admin, query, scalar
from tasks.deploy.errors import describe_error

MARKER_TIMEOUT = 5.0
READ_ONLY_ERROR = 1290


@dataclass(frozen=True)
class NodeStatus:
    """What one db node says about itself (error set when it could not be asked)."""

    name: str
    address: str
    role: str
    reachable: bool = True
    error: str = ""
    server_id: int | None = None
    read_only: bool | None = None
    gtid_binlog_pos: str = ""
    gtid_slave_pos: str = ""
    replica: ReplicaStatus | None = None


@dataclass(frozen=True)
class ClusterStatus:
    """The tier as a whole: who is primary, the nodes, and every problem found."""

    primary: str | None
    nodes: list[NodeStatus]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_node_status(conn: pymysql.connections.Connection, host: Host) -> NodeStatus:
    """Ask a node (admin connection) for its state."""
    row = query(conn, "SELECT @@server_id AS server_id, @@read_only AS read_only, "
                      "@@gtid_binlog_pos AS binlog_pos, @@gtid_slave_pos AS slave_pos")[0]
    return NodeStatus(
        name=host.name, address=host.hostname, role=str(host["db_role"]),
        server_id=int(row["server_id"]), read_only=bool(row["read_only"]),
        gtid_binlog_pos=str(row["binlog_pos"] or ""), gtid_slave_pos=str(row["slave_pos"] or ""),
        replica=parse_slave_status(query(conn, "SHOW SLAVE STATUS")),
    )


def db_status(task: Task, target: DbTarget) -> Result:
    """Nornir task: result = NodeStatus of the host; failed when it cannot be reached."""
    host = task.host
    try:
        conn = connect_admin(target, host, read_timeout=10)
    except DbError as exc:
        status = NodeStatus(host.name, host.hostname, str(host["db_role"]), reachable=False,
                            error=str(exc))
        return Result(host=host, result=status, failed=True)
    try:
        return Result(host=host, result=read_node_status(conn, host))
    finally:
        conn.close()


def _primary_problems(node: NodeStatus) -> list[str]:
    problems = []
    if node.read_only:
        problems.append(f"{node.name}: the primary is read-only")
    if node.replica is not None and node.replica.running:
        problems.append(f"{node.name}: the primary is itself replicating from "
                        f"{node.replica.master_host}")
    return problems


def _replication_problems(name: str, rep: ReplicaStatus, address: str | None) -> list[str]:
    problems = []
    if address and rep.master_host != address:
        problems.append(f"{name}: replicates from {rep.master_host}, not the primary {address}")
    if not rep.running:
        problems.append(f"{name}: replication threads IO={rep.io_running} "
                        f"SQL={rep.sql_running}")
    if rep.last_error:
        problems.append(f"{name}: {rep.last_error}")
    if rep.running and rep.seconds_behind != 0:
        problems.append(f"{name}: {rep.seconds_behind} s behind the primary")
    return problems


def _replica_problems(node: NodeStatus, address: str | None) -> list[str]:
    problems = [] if node.read_only else [f"{node.name}: the replica is not read-only"]
    if node.replica is None:
        return [*problems, f"{node.name}: replication is not configured"]
    return problems + _replication_problems(node.name, node.replica, address)


def _node_problems(node: NodeStatus, address: str | None) -> list[str]:
    if not node.reachable:
        return [f"{node.name}: unreachable: {node.error}"]
    if node.role == "primary":
        return _primary_problems(node)
    return _replica_problems(node, address)


def cluster_status(nodes: list[NodeStatus], primary_address: str | None = None,
                   require_primary: bool = True) -> ClusterStatus:
    """Put the nodes together and list every problem (pure).

    `require_primary`: the primary is among the nodes asked (False for `--host db2` alone).
    """
    primaries = [n for n in nodes if n.role == "primary"]
    primary = primaries[0] if len(primaries) == 1 else None
    address = primary_address or (primary.address if primary else None)
    problems = [p for node in nodes for p in _node_problems(node, address)]
    if primary is None and (require_primary or len(primaries) > 1):
        problems.append(f"the db tier needs exactly one primary, found {len(primaries)}")
    return ClusterStatus(primary.name if primary else None, nodes, problems)


def cluster_from_results(result: AggregatedResult) -> ClusterStatus:
    """ClusterStatus from an ``nr.run(task=db_status)`` result; a host whose task failed is
    an unreachable node carrying the error, never left out."""
    nodes = []
    for multi in result.values():
        res = multi[0]
        if isinstance(res.result, NodeStatus) and not multi.failed:
            nodes.append(res.result)
        else:
            error = str(res.exception or "no status").strip().splitlines()
            nodes.append(NodeStatus(res.host.name, res.host.hostname,
                                    str(res.host.get("db_role", "?")), reachable=False,
                                    error=error[0] if error else type(res.exception).__name__))
    asked_primary = any(n.role == "primary" for n in nodes)
    return cluster_status(nodes, require_primary=asked_primary)


def print_cluster(cluster: ClusterStatus, console: Console | None = None) -> None:
    """The cluster state as a table, then its problems with last errors (or 'healthy')."""
    console = console or Console()
    table = Table(title=f"database tier (primary: {cluster.primary or '?'})")
    for column in ("node", "address", "role", "id", "read_only", "GTID", "IO/SQL", "lag s"):
        table.add_column(column, no_wrap=True)
    for n in cluster.nodes:
        rep = n.replica
        if not n.reachable:
            table.add_row(n.name, n.address, n.role, *["?"] * 5)
            continue
        gtid = n.gtid_slave_pos if n.role == "replica" else n.gtid_binlog_pos
        table.add_row(
            n.name, n.address, n.role, str(n.server_id), "ON" if n.read_only else "OFF",
            gtid or "-", f"{rep.io_running}/{rep.sql_running}" if rep else "-",
            "-" if rep is None or rep.seconds_behind is None else str(rep.seconds_behind),
        )
    console.print(table)
    for problem in cluster.problems:
        console.print(f"[red]problem[/red]: {problem}")
    if cluster.ok:
        console.print("[green]healthy[/green]: one primary, every replica running, "
                      "no error, no lag")


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


def _live_node_problems(conn: pymysql.connections.Connection, status: NodeStatus,
                        host: Host, primary: Host | None) -> list[str]:
    """What is wrong with one node for its role (`primary`: the one a replica follows)."""
    problems = [p for p in cluster_status([status], primary.hostname if primary else None)
                .problems if "needs exactly one primary" not in p]
    if primary is None and not scalar(conn, "SELECT @@log_bin"):
        problems.append(f"{host.name}: the binary log is off")
    return problems


def check_db_node(task: Task, target: DbTarget, inventory: Inventory) -> Result:
    """Nornir task: the node is right for its role (a writable primary with its binary log;
    a read-only replica following the primary, both threads running, no error, no lag);
    raises DbError listing the problems. Writes nothing. Result.result: its NodeStatus."""
    host = task.host
    primary = None if host["db_role"] == "primary" else replica_source(host, inventory)
    conn = connect_admin(target, host, read_timeout=10)
    try:
        status = read_node_status(conn, host)
        problems = _live_node_problems(conn, status, host, primary)
    finally:
        conn.close()
    if problems:
        raise DbError("; ".join(problems))
    return Result(host=host, result=status)


def verify_db(task: Task, target: DbTarget, inventory: Inventory,
              marker_timeout: float = MARKER_TIMEOUT) -> Result:
    """Nornir task: check a db host with SQL; raises DbError listing every problem.

    Result: result = {'role', 'marker_delay_s', 'write_refused', 'gtid_slave_pos', ...}.
    """
    host = task.host
    db = database_name(host)
    primary = None if host["db_role"] == "primary" else replica_source(host, inventory)
    conn = connect_admin(target, host, read_timeout=10)
    try:
        status = read_node_status(conn, host)
        problems = _live_node_problems(conn, status, host, primary)
        if primary is None:
            if problems:
                raise DbError("; ".join(problems))
            return Result(host=host, result={"role": "primary",
                                             "gtid_binlog_pos": status.gtid_binlog_pos})
        return Result(host=host, result=_verify_replica(
            conn, status, target, host, primary, db, marker_timeout, problems))
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
    refusal = None if forbidden else write_refusal(conn, db)
    if refusal is None and not forbidden:
        problems.append(f"{host.name}: a write on the replica was accepted (read_only off?)")
    if problems:
        raise DbError("; ".join(problems))
    rep = status.replica
    return {"role": "replica", "marker_delay_s": delay, "write_refused": refusal,
            "gtid_slave_pos": status.gtid_slave_pos,
            "io_running": rep.io_running if rep else None,
            "sql_running": rep.sql_running if rep else None,
            "seconds_behind": rep.seconds_behind if rep else None}
