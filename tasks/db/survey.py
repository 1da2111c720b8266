"""Ask every db node of the inventory what it is (admin connections, nothing written).

``survey`` gives one ``Probe`` per node (tasks.db.topology); ``find_primary`` decides the
primary from them. A node still starting (connection refused) is asked again for a bounded
time when no node is writable, since the decision then depends on every node.
"""

from __future__ import annotations

import time

import pymysql
from nornir.core.inventory import Host, Inventory

from tasks.core.inventory import tier_hosts
from tasks.db.facts import parse_slave_status
from tasks.db.sql import DbError, DbTarget, connect_admin, error_code, query
from tasks.db.topology import DOWN, FRESH, UP, Decision, Probe, decide
from tasks.deploy.errors import describe_error

SETTLE_WAIT = 30.0
REFUSED_ACCOUNT = (1045, 1130)  # access denied / host not allowed: no admin account yet


def probe_node(target: DbTarget, host: Host) -> Probe:
    """What one node says (state ``down`` or ``fresh`` when it cannot be asked)."""
    try:
        conn = connect_admin(target, host, read_timeout=10)
    except DbError as exc:
        code = error_code(exc.__cause__) if exc.__cause__ else None
        state = FRESH if code in REFUSED_ACCOUNT else DOWN
        return Probe(host.name, host.hostname, state, error=str(exc))
    try:
        row = query(conn, "SELECT @@read_only AS ro, @@gtid_binlog_pos AS binlog, "
                          "@@gtid_current_pos AS cur")[0]
        status = parse_slave_status(query(conn, "SHOW SLAVE STATUS"))
    except pymysql.MySQLError as exc:
        raise DbError(f"{host.name}: asking it what it is failed: "
                      f"{describe_error(exc)}") from exc
    finally:
        conn.close()
    return Probe(host.name, host.hostname, UP, read_only=bool(row["ro"]),
                 source=status.master_host if status else "",
                 binlog_pos=str(row["binlog"] or ""), current_pos=str(row["cur"] or ""))


def survey(target: DbTarget, inventory: Inventory, settle: float = SETTLE_WAIT) -> list[Probe]:
    """A Probe per db node; nodes that do not answer are asked again (up to `settle` s)
    while no node is writable."""
    hosts = tier_hosts(inventory, "db")
    probes = {h.name: probe_node(target, h) for h in hosts}
    deadline = time.monotonic() + settle
    while (any(p.state == DOWN for p in probes.values())
           and not any(p.writable for p in probes.values())
           and time.monotonic() < deadline):
        time.sleep(0.5)
        for host in hosts:
            if probes[host.name].state == DOWN:
                probes[host.name] = probe_node(target, host)
    return [probes[h.name] for h in hosts]


def inventory_primary(inventory: Inventory) -> str:
    """The db node the inventory names primary (its initial role)."""
    names = [h.name for h in tier_hosts(inventory, "db") if h["db_role"] == "primary"]
    if len(names) != 1:
        raise DbError(f"the db tier needs exactly one primary in the inventory, found "
                      f"{len(names)}")
    return names[0]


def find_primary(target: DbTarget, inventory: Inventory,
                 settle: float = SETTLE_WAIT) -> tuple[Decision, list[Probe]]:
    """The decision about the actual primary, and the probes it was made from."""
    probes = survey(target, inventory, settle)
    return decide(probes, inventory_primary(inventory)), probes
