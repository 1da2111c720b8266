"""Change the primary without losing an acknowledged write: switchover, failover, rejoin, degrade.

Each operation checks its preconditions first (``Refused``: nothing changed, the message says
what to run next), then runs its steps, each printed with its time (``Steps``). They are safe
to run again after an interruption: each step looks at the nodes' state first.

- ``switchover(to)``: fence the primary (read_only ON), wait until the target's
  ``gtid_current_pos`` equals the primary's ``gtid_binlog_pos`` (exact strings), stop and
  reset the target's replication, make the old primary its replica
  (``MASTER_DEMOTE_TO_SLAVE``), open the target (semi-sync on, read_only OFF), check both ways.
- ``failover(to)``: the primary is dead (the controller cannot reach it AND the replica's IO
  thread lost it), or it is back read-only holding nothing the target lacks (a restart dropped
  transactions its replica holds: the deploy cannot reopen it without losing them). Stop the IO
  thread (never restart it before promoting: that purges the relay log), wait until the SQL
  thread applied everything received (``gtid_slave_pos`` equals ``Gtid_IO_Pos``), reset
  replication, write the epoch row, open the node. Its writes then wait for a replica
  (``rejoin`` the old primary, or ``degrade``), or with ``degrade=True`` (the watcher's
  default) it opens degraded: writes go on without a copy, recorded, until the old primary
  rejoins. Safe against a second writer: the old primary is fenced (it boots read-only, and
  while alive its own commits wait for an acknowledgement no node gives). Never promotes a node
  that was not in sync when the tier was last seen healthy, that restarted since, that holds
  transactions of its own, or of a degraded tier (tasks.db.insync).
- ``rejoin(name)``: a returned node becomes a replica of the actual primary
  (``MASTER_DEMOTE_TO_SLAVE``); a diverged node (error 1236, or GTIDs the primary lacks) is
  refused with the command that re-clones it (``rebuild``, tasks.db.rebuild). Turns semi-sync
  back on at the primary (``attach``, shared with ``rebuild``).
- ``degrade()``: the primary stops waiting for acknowledgements (async, on purpose), recorded
  in the controller's state (``DEGRADED_MARK``): no replica may be promoted by ``failover``
  until one has caught up and semi-sync is on again (``rejoin`` or the deploy clear it).
"""

from __future__ import annotations

import time

from pymysql.converters import escape_string

from tasks.core import state
from tasks.db import gtid
from tasks.db.degraded import DEGRADED_MARK, clear_degraded, degraded_mark, mark_degraded
from tasks.db.deploy import database_name
from tasks.db.insync import last_in_sync, own_transactions, promotion_refusal, record_in_sync
from tasks.db.roles import (
    fence_writes,
    follow_primary,
    open_writes,
    root_command,
    root_sql,
    semi_sync_master,
)
from tasks.db.sql import DbError, query, scalar
from tasks.db.status import NodeStatus, cluster_status
from tasks.db.tier import Refused, Steps, Tier
from tasks.db.verify import tier_statuses, wait_marker, write_marker

CATCH_UP = 30.0
CHECK_WAIT = 10.0
POLL = 0.005
POLL_PATIENT = 0.5
PRIMARY_WAIT = 15.0  # s rejoin asks again for a primary it could not read
EPOCH_TABLE = "failovers"
RECORD_WAIT = 5.0


# --- preconditions -----------------------------------------------------------------------

def _primary(nodes: dict[str, NodeStatus]) -> NodeStatus | None:
    primaries = [n for n in nodes.values() if n.role == "primary"]
    if len(primaries) > 1:
        raise Refused("SPLIT BRAIN: " + ", ".join(n.name for n in primaries) + " all accept "
                      "writes: fence all but one as root (SET GLOBAL read_only = ON)")
    return primaries[0] if primaries else None


def _source(tier: Tier, node: NodeStatus) -> str | None:
    return tier.by_address(node.replica.master_host) if node.replica else None


def _switchover_pair(tier: Tier, nodes: dict[str, NodeStatus], to: str) -> tuple[str, bool]:
    """(the current primary, already fenced) for a switchover to `to`, or Refused."""
    target = nodes[to]
    if not target.reachable:
        raise Refused(f"{to} does not answer: {target.error}")
    primary = _primary(nodes)
    if primary is not None and primary.name == to:
        raise Refused(f"{to} is already the primary")
    source = _source(tier, target)
    if source is None:
        raise Refused(f"{to} replicates from no node of the inventory: run "
                      f"runbooks/db_failover.py rejoin {to}")
    if primary is not None and primary.name != source:
        raise Refused(f"{to} replicates from {source}, not the primary {primary.name}: run "
                      f"runbooks/db_failover.py rejoin {to}")
    old = nodes[source]
    if primary is None and not (old.reachable and old.read_only):
        raise Refused(f"no node accepts writes and {source} is not a fenced primary: see "
                      "runbooks/db_status.py")
    rep = target.replica
    if rep is None or rep.last_error or rep.io_running != "Yes":
        raise Refused(f"{to} is not receiving from {source} "
                      f"({rep.last_error if rep else 'no replication'}): fix it first")
    return source, primary is None


# --- steps shared by the operations -------------------------------------------------------

def wait_same_position(tier: Tier, primary: str, replica: str, timeout: float) -> str:
    """Wait until the replica's gtid_current_pos equals the (fenced) primary's
    gtid_binlog_pos as strings; return it. Raises DbError on a replication error or timeout."""
    with tier.conn(primary) as pconn, tier.conn(replica) as rconn:
        wanted = gtid.normalize(scalar(pconn, "SELECT @@GLOBAL.gtid_binlog_pos"))
        deadline = time.monotonic() + timeout
        while True:
            have = gtid.normalize(scalar(rconn, "SELECT @@GLOBAL.gtid_current_pos"))
            if have == wanted:
                return have
            if time.monotonic() > deadline:
                errors = query(rconn, "SHOW SLAVE STATUS")
                raise DbError(f"{replica} did not reach {primary}'s position {wanted} within "
                              f"{timeout:.0f} s (at {have}; {_slave_error(errors)})")
            time.sleep(POLL)


def _slave_error(rows: list[dict]) -> str:
    if not rows:
        return "no replication"
    row = rows[0]
    return (f"IO {row.get('Slave_IO_Running')} {row.get('Last_IO_Error') or ''}, "
            f"SQL {row.get('Slave_SQL_Running')} {row.get('Last_SQL_Error') or ''}").strip()


def stop_replication(tier: Tier, name: str) -> None:
    """STOP SLAVE; RESET SLAVE ALL (as root: the node is read-only)."""
    tier.on(name, root_sql, sql="STOP SLAVE;\nRESET SLAVE ALL;\n")


def make_replica(tier: Tier, name: str, primary: str) -> None:
    """`name` replicates from `primary` (demoted: its own binlog position kept), started."""
    with tier.conn(name) as conn:
        semi_sync_master(conn, False)  # fenced: nothing waits for an ack here
    host = tier.host(primary)
    tier.on(name, follow_primary, address=host.hostname, port=int(host["db_port"]),
            password=tier.target.secrets.replication, demote=True, tls=tier.target.tls)
    with tier.conn(name) as conn:
        query(conn, "START SLAVE")


def wait_replicating(tier: Tier, name: str, primary: str, timeout: float) -> None:
    """Both threads of `name` run and it holds the primary's position (seen at start);
    Refused (with the command to run) on divergence (error 1236), DbError on others."""
    with tier.conn(primary) as pconn:
        wanted = scalar(pconn, "SELECT @@GLOBAL.gtid_binlog_pos")
    deadline = time.monotonic() + timeout
    with tier.conn(name) as conn:
        while True:
            rows = query(conn, "SHOW SLAVE STATUS")
            row = rows[0] if rows else {}
            if row.get("Last_IO_Errno") == 1236:
                raise Refused(f"{name} has diverged from {primary} (error 1236: "
                              f"{row.get('Last_IO_Error')}): re-clone {name} from "
                              f"{primary}: {rebuild_command(name)}")
            running = (row.get("Slave_IO_Running"), row.get("Slave_SQL_Running")) == ("Yes",
                                                                                     "Yes")
            have = scalar(conn, "SELECT @@GLOBAL.gtid_current_pos")
            if running and gtid.contains(have, wanted):
                return
            if time.monotonic() > deadline:
                raise DbError(f"{name} did not catch up with {primary} within {timeout:.0f} s "
                              f"({_slave_error(rows)})")
            time.sleep(0.05)


def check_pair(tier: Tier, primary: str, replica: str, timeout: float = CHECK_WAIT) -> float:
    """A marker written on the primary is read on the replica; the primary waits for its
    ack (semi-sync ON, a client); the replica refuses... (read_only). Seconds to see it."""
    db = database_name(tier.host(primary))
    with tier.conn(primary, read_timeout=30) as pconn, tier.conn(replica) as rconn:
        if scalar(pconn, "SELECT @@GLOBAL.read_only") or not scalar(
                rconn, "SELECT @@GLOBAL.read_only"):
            raise DbError(f"{primary} must be writable and {replica} read-only")
        token = write_marker(pconn, db, f"check {primary}->{replica}")
        delay = wait_marker(rconn, db, token, timeout)
        status = {r["Variable_name"]: r["Value"] for r in query(
            pconn, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")}
    if delay is None:
        raise DbError(f"a marker written on {primary} did not reach {replica} within "
                      f"{timeout:.0f} s")
    if status.get("Rpl_semi_sync_master_status") != "ON":
        raise DbError(f"{primary}: semi-sync is not on")
    return delay


def rebuild_command(name: str) -> str:
    return f"runbooks/db_failover.py rebuild {name}"


def record_if_healthy(tier: Tier, steps: Steps, wait: float = RECORD_WAIT) -> bool:
    """Record the tier as seen in sync (tasks.db.insync) once it is healthy (a replica
    under load may show a second of lag: asked again for up to `wait` s)."""
    deadline = time.monotonic() + wait
    while True:
        cluster = cluster_status(tier_statuses(tier.target, tier.nr.inventory))
        if record_in_sync(cluster):
            steps.say("  recorded: the tier is in sync (what failover promotes from)")
            return True
        if time.monotonic() > deadline:
            steps.say("  not recorded as in sync: " + "; ".join(cluster.problems))
            return False
        time.sleep(0.2)


# --- the operations -----------------------------------------------------------------------

def switchover(tier: Tier, to: str, steps: Steps, catch_up: float = CATCH_UP) -> None:
    """Planned change of primary to `to` (see the module's docstring)."""
    nodes = tier.statuses()
    old, fenced = _switchover_pair(tier, nodes, to)
    steps.say(f"switchover: {old} -> {to}" + (" (resuming: {old} is fenced)" if fenced else ""))
    if not fenced:
        with steps.step(f"fence {old}: read_only ON"):
            tier.on(old, fence_writes)
    with steps.step(f"wait until {to}'s gtid_current_pos equals {old}'s gtid_binlog_pos"):
        position = wait_same_position(tier, old, to, catch_up)
    steps.say(f"  both at {position}")
    with steps.step(f"stop replication on {to}"):
        stop_replication(tier, to)
    with steps.step(f"demote {old}: replicate from {to} (MASTER_DEMOTE_TO_SLAVE)"):
        make_replica(tier, old, to)
    with steps.step(f"promote {to}: semi-sync on, read_only OFF"):
        tier.on(to, open_writes, semi_sync=True)
    with steps.step(f"check: {old} replicates from {to}, a marker goes through"):
        wait_replicating(tier, old, to, catch_up)
        check_pair(tier, to, old)
    record_if_healthy(tier, steps)
    pause = sum(steps.ms(p) for p in ("fence", "wait", "stop", "demote", "promote"))
    steps.say(f"switchover done: {to} is the primary, {old} its replica (writes refused "
              f"for about {pause:.0f} ms, fence to promotion)")


def _failover_target(tier: Tier, nodes: dict[str, NodeStatus], to: str | None) -> tuple[str, str]:
    """(target, dead primary) for a failover, or Refused."""
    primary = _primary(nodes)
    if primary is not None:
        raise Refused(f"{primary.name} accepts writes: this is no failover (use switchover)")
    replicas = [n.name for n in nodes.values() if n.reachable and n.replica is not None]
    name = to or (replicas[0] if len(replicas) == 1 else None)
    if name is None or name not in replicas:
        raise Refused(f"name the node to promote among the reachable replicas {replicas} "
                      "(--to)")
    target = nodes[name]
    rep = target.replica
    assert rep is not None
    dead = _source(tier, target)
    if dead is None:
        raise Refused(f"{name} replicates from {rep.master_host}, not a node of the inventory")
    if nodes[dead].reachable:
        _check_back_and_behind(nodes[dead], target)
        return name, dead
    if rep.io_running == "Yes":
        raise Refused(f"{name} still receives from {dead} (IO thread running): the "
                      "controller alone lost it; refusing (a partition, not a dead primary)")
    if rep.sql_errno:
        raise Refused(f"{name}: its SQL thread stopped on an error: {rep.sql_error}")
    why = promotion_refusal(target, dead, last_in_sync(), degraded_mark())
    if why:
        raise Refused(f"{name} is not promotable: {why}. Promoting it could lose writes "
                      f"{dead} acknowledged: bring {dead} back (it restarts read-only) and run "
                      f"runbooks/deploy.py --group db, which reopens it once {name} holds "
                      f"nothing it lacks; then runbooks/db_failover.py rejoin {name} if needed")
    return name, dead


def _check_back_and_behind(old: NodeStatus, target: NodeStatus) -> None:
    """The old primary answers again: promoting `target` is allowed only when `old` is fenced
    (read-only) and holds nothing `target` lacks (a restart with ``init_rpl_role=SLAVE``
    drops its in-doubt transactions, which its replica may hold: then neither the deploy nor
    a switchover can reopen the tier). Nothing `old` holds is lost; it rejoins afterwards."""
    if not old.read_only:
        raise Refused(f"{old.name} answers and accepts writes: this is no failover (use "
                      "switchover)")
    if target.replica is not None and target.replica.sql_errno:
        raise Refused(f"{target.name}: its SQL thread stopped on an error: "
                      f"{target.replica.sql_error}")
    own = own_transactions(target, old.name)
    if own:
        raise Refused(own)
    if not gtid.contains(target.gtid_current_pos, old.gtid_binlog_pos):
        raise Refused(f"{old.name} answers the controller (read-only: restarted) and holds "
                      f"transactions {target.name} lacks "
                      f"({', '.join(gtid.ahead(old.gtid_binlog_pos, target.gtid_current_pos))})"
                      f": reopen {old.name} with runbooks/deploy.py --group db, then "
                      f"runbooks/db_failover.py rejoin {target.name}")


def wait_applied(tier: Tier, name: str, timeout: float) -> str:
    """Wait until the SQL thread applied everything the IO thread received: gtid_slave_pos
    equals Gtid_IO_Pos (strings); return the position."""
    deadline = time.monotonic() + timeout
    with tier.conn(name) as conn:
        while True:
            rows = query(conn, "SHOW SLAVE STATUS")
            received = gtid.normalize(str(rows[0].get("Gtid_IO_Pos") or "")) if rows else ""
            applied = gtid.normalize(scalar(conn, "SELECT @@GLOBAL.gtid_slave_pos"))
            if rows and rows[0].get("Last_SQL_Errno"):
                raise DbError(f"{name}: SQL thread error: {rows[0].get('Last_SQL_Error')}")
            if applied == received or (not received and rows):
                return applied
            if time.monotonic() > deadline:
                raise DbError(f"{name} did not apply what it received within {timeout:.0f} s "
                              f"(received {received}, applied {applied})")
            time.sleep(POLL)


def epoch_sql(db: str, name: str, dead: str, position: str) -> str:
    """The new primary's first transaction (as root, read_only still ON, semi-sync off so
    that it needs no replica), then semi-sync on."""
    def lit(value: str) -> str:
        return "'" + escape_string(value) + "'"

    return ("SET GLOBAL rpl_semi_sync_master_enabled = OFF;\n"
            f"INSERT INTO {db}.{EPOCH_TABLE} (epoch, new_primary, old_primary, position) "
            f"SELECT COALESCE(MAX(epoch), 0) + 1, {lit(name)}, {lit(dead)}, {lit(position)} "
            f"FROM {db}.{EPOCH_TABLE};\n"
            "SELECT MAX(epoch) FROM " + f"{db}.{EPOCH_TABLE};\n")


def failover(tier: Tier, to: str | None, steps: Steps, catch_up: float = CATCH_UP,
             degrade: bool = False) -> str:
    """Promote a replica of a dead primary (see the module's docstring); its name."""
    name, dead = _failover_target(tier, tier.statuses(), to)
    steps.say(f"failover: {dead} is dead (the controller and {name}'s IO thread lost it); "
              f"promoting {name}")
    with steps.step(f"stop {name}'s IO thread (its relay log is kept)"):
        with tier.conn(name) as conn:
            query(conn, "STOP SLAVE IO_THREAD")
    with steps.step(f"wait until {name} applied everything it received"):
        position = wait_applied(tier, name, catch_up)
    steps.say(f"  applied {position}")
    with steps.step(f"stop replication on {name}"):
        stop_replication(tier, name)
    finish_promotion(tier, name, dead, position, steps, degrade)
    return name


def finish_promotion(tier: Tier, name: str, dead: str, position: str, steps: Steps,
                     degrade: bool) -> None:
    """The failover's last two steps, once `name`'s replication is reset (also what a
    watcher that died after that reset left to do): the epoch row, then ``open_promoted``."""
    with steps.step(f"write the epoch row on {name}"):
        out = tier.on(name, root_sql, sql=epoch_sql(database_name(tier.host(name)), name,
                                                     dead, position))
    steps.say(f"  epoch {out.strip().splitlines()[-1] if out.strip() else '?'}")
    open_promoted(tier, name, dead, position, steps, degrade)


def open_promoted(tier: Tier, name: str, dead: str, position: str, steps: Steps,
                  degrade: bool) -> None:
    """The failover's last step: read_only OFF on `name`, semi-sync on, or off and recorded
    (degraded) when asked."""
    if degrade:
        with steps.step(f"record the degraded state in {state.STATE_DIR / DEGRADED_MARK}"):
            mark_degraded(name, position, f"failover: {dead} lost")
    semi = "off (degraded)" if degrade else "on"
    with steps.step(f"promote {name}: semi-sync {semi}, read_only OFF"):
        tier.on(name, open_writes, semi_sync=not degrade)
    if degrade:
        steps.say(f"failover done: {name} is the primary, DEGRADED: it acknowledges writes "
                  f"that no replica holds until {dead} is back: runbooks/db_failover.py "
                  f"rejoin {dead} (it turns semi-sync on again)")
    else:
        steps.say(f"failover done: {name} is the primary. Its commits wait for a replica's "
                  f"acknowledgement: bring {dead} back and run runbooks/db_failover.py "
                  f"rejoin {dead}, or accept writes without a copy: runbooks/db_failover.py "
                  "degrade")


def _primary_for(tier: Tier, name: str, wait: float = PRIMARY_WAIT,
                 ) -> tuple[dict[str, NodeStatus], NodeStatus]:
    """The nodes and the actual primary for `name` to follow. A node that could not be read
    may be that primary, busy (its commits waiting for the very replica being brought back):
    it is asked again, within `wait` s, before refusing."""
    deadline = time.monotonic() + wait
    while True:
        nodes = tier.statuses()
        primary = _primary(nodes)
        if primary is not None:
            return nodes, primary
        unread = [f"{n.name} ({n.error})" for n in nodes.values()
                  if not n.reachable and n.name != name]
        if not unread or time.monotonic() > deadline:
            break
        time.sleep(POLL_PATIENT)
    why = f" (could not be read: {', '.join(unread)})" if unread else ""
    raise Refused(f"no node accepts writes{why}: run runbooks/db_failover.py failover (or "
                  "switchover to resume an interrupted one)")


def rejoin(tier: Tier, name: str, steps: Steps, catch_up: float = CATCH_UP) -> None:
    """A returned node becomes a replica of the actual primary (module's docstring)."""
    nodes, primary = _primary_for(tier, name)
    if primary.name == name:
        raise Refused(f"{name} is the primary")
    node = nodes[name]
    if not node.reachable:
        with steps.step(f"start mariadb on {name} (it boots read-only)"):
            tier.on(name, root_command, command="pidof mariadbd || service mariadb start")
        node = tier.status(name)
        if not node.reachable:
            raise Refused(f"{name} does not answer: {node.error}")
    # The primary read again, after the node: a replica in sync under load holds more than
    # an earlier read of the primary showed (a false "diverged" otherwise).
    primary = tier.status(primary.name)
    _check_not_diverged(node, primary)
    if _follows(tier, node, primary.name):
        steps.say(f"{name} already replicates from {primary.name}")
    else:
        with steps.step(f"{name}: replicate from {primary.name} (MASTER_DEMOTE_TO_SLAVE)"):
            make_replica(tier, name, primary.name)
    attach(tier, name, primary.name, steps, catch_up)
    steps.say(f"rejoin done: {name} replicates from {primary.name}")


def attach(tier: Tier, name: str, primary: str, steps: Steps,
           catch_up: float = CATCH_UP) -> None:
    """`name` replicates from `primary`: wait until it caught up, turn semi-sync on at the
    primary (the degraded mark cleared), check a marker goes through, record the tier."""
    with steps.step(f"wait until {name} caught up with {primary}"):
        wait_replicating(tier, name, primary, catch_up)
    with steps.step(f"semi-sync on at {primary}"):
        with tier.conn(primary) as conn:
            if semi_sync_master(conn, True):
                steps.say("  it was off (degraded): on again")
        clear_degraded()
    with steps.step(f"check: a marker goes from {primary} to {name}"):
        check_pair(tier, primary, name)
    record_if_healthy(tier, steps)


def _follows(tier: Tier, node: NodeStatus, primary: str) -> bool:
    """`node` replicates from `primary`, running, over verified TLS exactly when the tier
    uses TLS (real machines)."""
    return (node.role == "replica" and _source(tier, node) == primary
            and node.replica is not None and node.replica.running
            and node.replica.verified_tls == tier.target.tls)


def _check_not_diverged(node: NodeStatus, primary: NodeStatus) -> None:
    if not node.read_only:
        raise Refused(f"{node.name} accepts writes too (SPLIT BRAIN): fence it as root "
                      f"(SET GLOBAL read_only = ON), then rejoin")
    ahead = gtid.ahead(node.gtid_binlog_pos, primary.gtid_binlog_pos)
    if not gtid.contains(primary.gtid_binlog_pos, node.gtid_binlog_pos):
        raise Refused(f"{node.name} has transactions {primary.name} never had "
                      f"({', '.join(ahead)}): it diverged; re-clone {node.name} from "
                      f"{primary.name}: {rebuild_command(node.name)}")


def degrade(tier: Tier, steps: Steps) -> None:
    """Accept writes without a replica copy, on purpose and recorded (module's docstring)."""
    primary = _primary(tier.statuses())
    if primary is None:
        raise Refused("no node accepts writes: nothing to degrade")
    with steps.step(f"record the degraded state in {state.STATE_DIR / DEGRADED_MARK}"):
        mark_degraded(primary.name, primary.gtid_binlog_pos)
    with steps.step(f"semi-sync off at {primary.name} (waiting commits return OK)"):
        with tier.conn(primary.name) as conn:
            semi_sync_master(conn, False)
    steps.say(f"DEGRADED: {primary.name} acknowledges writes that no replica holds. No "
              "replica is promotable until one has caught up and semi-sync is on again: "
              "runbooks/db_failover.py rejoin <node>")
