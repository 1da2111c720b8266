"""The database tier's state as the nodes report it, and what is wrong with it.

- ``read_node_status`` (SQL, reads only): one node's ``NodeStatus``: read_only, the GTID
  positions (binlog, slave, current), replication threads, lag, semi-sync on both sides,
  the durability settings it runs with, and when mariadbd started.
- ``cluster_status`` (pure): the nodes together: the actual primary (the one writable node
  that replicates from no one, whatever the inventory says), every problem found (two
  writable nodes, a replica following another node, a diverged node, semi-sync off...).
- ``db_status`` (Nornir task), ``cluster_from_results`` and ``print_cluster`` (a rich table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pymysql
from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, Result, Task
from rich.console import Console
from rich.table import Table

from tasks.db import gtid
from tasks.db.facts import ReplicaStatus, parse_slave_status
from tasks.db.sql import DbError, DbTarget, connect_admin, query

# What every node must run with (templates/mariadb/60-tp5.cnf.j2), read back live.
DURABILITY = {
    "sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1", "sync_relay_log": "1",
    "log_bin": "1", "log_slave_updates": "1", "gtid_strict_mode": "1",
    "rpl_semi_sync_slave_enabled": "1",
    "rpl_semi_sync_master_wait_point": "AFTER_SYNC",
    "rpl_semi_sync_master_timeout": "18446744073709551615",
    "rpl_semi_sync_master_wait_no_slave": "1", "slave_net_timeout": "4",
    "rpl_semi_sync_slave_kill_conn_timeout": "1",
}  # init_rpl_role is a start option only: mariadbd --help checks it (tasks.deploy.files)
# When mariadbd started (Unix s): a restart since the tier was seen in sync (tasks.db.insync).
BOOTED = ("SELECT UNIX_TIMESTAMP() - VARIABLE_VALUE AS booted FROM "
          "information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'")


@dataclass(frozen=True)
class SemiSync:
    """Semi-sync state: the primary side (enabled, status, clients, commits without an ack)
    and the replica side (its IO thread acknowledges)."""

    master_enabled: bool = False
    master_status: bool = False
    clients: int = 0
    no_tx: int = 0
    yes_tx: int = 0
    slave_status: bool = False


@dataclass(frozen=True)
class NodeStatus:
    """What one db node says about itself (error set when it could not be asked).

    ``inventory_role``: the role the inventory gives it (its initial role); ``role``: the
    role it actually has (``primary``, ``replica``, or ``read-only`` for a node that is
    read-only and follows no one: a restarted primary or a fresh node).
    """

    name: str
    address: str
    inventory_role: str
    reachable: bool = True
    error: str = ""
    server_id: int | None = None
    read_only: bool | None = None
    gtid_binlog_pos: str = ""
    gtid_slave_pos: str = ""
    gtid_current_pos: str = ""
    replica: ReplicaStatus | None = None
    semi: SemiSync = field(default_factory=SemiSync)
    settings: dict[str, str] = field(default_factory=dict)
    booted: int | None = None  # boot time (Unix s): changes when mariadbd restarts

    @property
    def role(self) -> str:
        if not self.reachable:
            return "unreachable"
        if self.replica is not None:
            return "replica"
        return "read-only" if self.read_only else "primary"


def _status_vars(conn: pymysql.connections.Connection) -> dict[str, str]:
    rows = query(conn, "SHOW GLOBAL STATUS WHERE Variable_name IN ("
                       "'Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients', "
                       "'Rpl_semi_sync_master_no_tx', 'Rpl_semi_sync_master_yes_tx', "
                       "'Rpl_semi_sync_slave_status')")
    return {str(r["Variable_name"]).lower(): str(r["Value"]) for r in rows}


def read_semi_sync(conn: pymysql.connections.Connection) -> SemiSync:
    """The node's semi-sync state (SHOW GLOBAL STATUS and the enabled flag)."""
    status = _status_vars(conn)
    enabled = query(conn, "SELECT @@rpl_semi_sync_master_enabled AS e")[0]["e"]
    return SemiSync(
        master_enabled=bool(enabled),
        master_status=status.get("rpl_semi_sync_master_status") == "ON",
        clients=int(status.get("rpl_semi_sync_master_clients", 0)),
        no_tx=int(status.get("rpl_semi_sync_master_no_tx", 0)),
        yes_tx=int(status.get("rpl_semi_sync_master_yes_tx", 0)),
        slave_status=status.get("rpl_semi_sync_slave_status") == "ON",
    )


def read_settings(conn: pymysql.connections.Connection) -> dict[str, str]:
    """The live values of the DURABILITY settings, as strings."""
    columns = ", ".join(f"@@GLOBAL.{name} AS {name}" for name in DURABILITY)
    row = query(conn, f"SELECT {columns}")[0]
    return {name: str(row[name]) for name in DURABILITY}


def read_node_status(conn: pymysql.connections.Connection, host: Host) -> NodeStatus:
    """Ask a node (admin connection) for its state."""
    row = query(conn, "SELECT @@server_id AS server_id, @@read_only AS read_only, "
                      "@@gtid_binlog_pos AS binlog_pos, @@gtid_slave_pos AS slave_pos, "
                      "@@gtid_current_pos AS current_pos")[0]
    booted = query(conn, BOOTED)[0]["booted"]
    return NodeStatus(
        name=host.name, address=host.hostname, inventory_role=str(host["db_role"]),
        server_id=int(row["server_id"]), read_only=bool(row["read_only"]),
        gtid_binlog_pos=str(row["binlog_pos"] or ""), gtid_slave_pos=str(row["slave_pos"] or ""),
        gtid_current_pos=str(row["current_pos"] or ""),
        replica=parse_slave_status(query(conn, "SHOW SLAVE STATUS")),
        semi=read_semi_sync(conn), settings=read_settings(conn),
        booted=None if booted is None else int(round(float(booted))),
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


@dataclass(frozen=True)
class ClusterStatus:
    """The tier as a whole: the actual primary, the nodes, every problem, and notes (the
    inventory disagreeing with reality: not a problem, said aloud)."""

    primary: str | None
    nodes: list[NodeStatus]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def settings_problems(node: NodeStatus) -> list[str]:
    """Live settings that differ from the template's (empty when not read)."""
    return [f"{node.name}: {name} is {node.settings[name]}, the settings want {want}"
            for name, want in DURABILITY.items()
            if name in node.settings and node.settings[name] != want]


def _primary_problems(node: NodeStatus) -> list[str]:
    semi = node.semi
    if not semi.master_enabled:
        return [f"{node.name}: DEGRADED: semi-sync is off on the primary: acknowledged writes "
                "exist on this node only (runbooks/db_failover.py degrade was run, or no "
                "replica has caught up yet: run the deploy)"]
    if semi.clients == 0:
        return [f"{node.name}: no replica acknowledges: writes wait (runbooks/db_failover.py "
                "degrade to accept writes without a replica copy)"]
    return []


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
        problems.append(lag_problem(name, rep.seconds_behind))
    return problems


def lag_problem(name: str, seconds: int | None) -> str:
    """The problem of a replica whose Seconds_Behind_Master is not 0."""
    return f"{name}: {seconds} s behind the primary"


def pending_catch_up(cluster: ClusterStatus, name: str,
                     problems: list[str]) -> tuple[list[str], str | None]:
    """Node `name`'s `problems` with its lag judged (pure): the problems that stand, and the
    primary's position to wait for before they are final (None: nothing to wait for).

    A replica caught up when read (its gtid_current_pos holds the primary's gtid_binlog_pos,
    read after it) has no lag problem: Seconds_Behind_Master was about events it has applied
    since. One still behind, with no other problem, has the primary's position to wait for;
    with another problem there is nothing to wait for: they are reported at once.
    """
    node = next((n for n in cluster.nodes if n.name == name), None)
    primary = next((n for n in cluster.nodes if n.name == cluster.primary), None)
    rep = node.replica if node is not None else None
    if node is None or primary is None or rep is None:
        return problems, None
    lag = lag_problem(name, rep.seconds_behind)
    if lag not in problems:
        return problems, None
    others = [p for p in problems if p != lag]
    if gtid.contains(node.gtid_current_pos, primary.gtid_binlog_pos):
        return others, None
    return problems, None if others else primary.gtid_binlog_pos


def _replica_problems(node: NodeStatus, primary: NodeStatus | None) -> list[str]:
    problems = [] if node.read_only else [f"{node.name}: the replica is not read-only"]
    assert node.replica is not None
    problems += _replication_problems(node.name, node.replica,
                                      primary.address if primary else None)
    if node.replica.running and node.settings and not node.semi.slave_status:
        problems.append(f"{node.name}: its replication does not acknowledge (semi-sync off)")
    if primary is not None and not gtid.contains(primary.gtid_binlog_pos,
                                                 node.gtid_current_pos):
        ahead = ", ".join(gtid.ahead(node.gtid_current_pos, primary.gtid_binlog_pos))
        problems.append(f"{node.name}: DIVERGED: holds transactions the primary "
                        f"{primary.name} lacks ({ahead}): re-clone {node.name} from "
                        f"{primary.name}: runbooks/db_failover.py rebuild {node.name}")
    return problems


def _node_problems(node: NodeStatus, primary: NodeStatus | None, semi: bool) -> list[str]:
    if not node.reachable:
        return [f"{node.name}: unreachable: {node.error}"]
    problems = settings_problems(node)
    if node.role == "primary":
        return problems + (_primary_problems(node) if semi else [])
    if node.role == "replica":
        return problems + _replica_problems(node, primary)
    return problems + [f"{node.name}: read-only and replicating from no one (a restarted "
                       f"primary or a fresh node): runbooks/db_failover.py rejoin {node.name}"
                       " or the deploy"]


def cluster_status(nodes: list[NodeStatus], require_primary: bool = True,
                   semi: bool = True) -> ClusterStatus:
    """Put the nodes together and list every problem (pure).

    `require_primary`: the tier's primary must be among the nodes asked (False for
    ``--host db2`` alone). `semi`: check the primary's semi-sync state (a tier-level fact:
    False while the replicas may still be attaching, as in a host's own deploy check).
    """
    primaries = [n for n in nodes if n.role == "primary"]
    primary = primaries[0] if len(primaries) == 1 else None
    problems = [p for node in nodes for p in _node_problems(node, primary, semi)]
    if len(primaries) > 1:
        problems.insert(0, "SPLIT BRAIN: " + ", ".join(n.name for n in primaries)
                        + " all accept writes")
    elif primary is None and require_primary:
        problems.insert(0, "no node accepts writes (no primary)")
    notes = []
    if primary is not None and primary.inventory_role != "primary":
        notes.append(f"the actual primary is {primary.name}; the inventory still names "
                     f"another node (initial roles)")
    return ClusterStatus(primary.name if primary else None, nodes, problems, notes)


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
    asked_primary = any(n.inventory_role == "primary" or n.role == "primary" for n in nodes)
    return cluster_status(nodes, require_primary=asked_primary)


def _semi_cell(n: NodeStatus) -> str:
    s = n.semi
    if n.role == "primary":
        state = "ON" if s.master_status else "OFF" if s.master_enabled else "DISABLED"
        return f"{state} clients={s.clients} no_tx={s.no_tx}"
    return "acks" if s.slave_status else "-"


def print_cluster(cluster: ClusterStatus, console: Console | None = None) -> None:
    """The cluster state as a table, then its problems with last errors (or 'healthy')."""
    console = console or Console()
    table = Table(title=f"database tier (actual primary: {cluster.primary or 'none'})")
    for column in ("node", "address", "role (inventory)", "id", "read_only", "gtid_binlog_pos",
                   "gtid_slave_pos", "gtid_current_pos", "IO/SQL", "lag s", "semi-sync"):
        table.add_column(column, no_wrap=True)
    for n in cluster.nodes:
        rep = n.replica
        label = f"{n.role} ({n.inventory_role})"
        if not n.reachable:
            table.add_row(n.name, n.address, label, *["?"] * 8)
            continue
        table.add_row(
            n.name, n.address, label, str(n.server_id), "ON" if n.read_only else "OFF",
            n.gtid_binlog_pos or "-", n.gtid_slave_pos or "-", n.gtid_current_pos or "-",
            f"{rep.io_running}/{rep.sql_running}" if rep else "-",
            "-" if rep is None or rep.seconds_behind is None else str(rep.seconds_behind),
            _semi_cell(n),
        )
    console.print(table)
    for note in cluster.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    for problem in cluster.problems:
        console.print(f"[red]problem[/red]: {problem}")
    if cluster.ok:
        console.print("[green]healthy[/green]: one primary, semi-sync on, every replica "
                      "running, no error, no lag, no divergence")
