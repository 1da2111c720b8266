"""Re-clone a diverged or too-far-behind node from the actual primary, then attach it.

``rebuild(tier, name, steps)``:

1. refuse: no primary, `name` is the primary, or the primary's commits would wait for an
   acknowledgement that no replica can give while `name` is rebuilt (semi-sync on, no other
   replica acknowledging: the backup's commit lock would wait for them too): ``degrade``
   first, an explicit decision;
2. stream a backup of the primary (``mariadb-backup --backup --stream=mbstream``) through
   the controller into ``mbstream -x`` in a staging directory on `name` (tasks.core.pipe),
   prepare it there, read its GTID position (``xtrabackup_binlog_info``);
3. stop MariaDB on `name`, swap the data directories (the old one kept aside), start it:
   it boots read-only (the settings), checked; its own admin account is made again;
4. ``gtid_slave_pos`` = the backup's position (a fresh clone: its binary log is empty),
   ``CHANGE MASTER ... MASTER_USE_GTID = slave_pos``, start, then ``attach`` (caught up,
   semi-sync on, a marker goes through, the tier recorded in sync).

Safe to run again after an interruption: the target keeps its old data until the swap, and
each run starts from a fresh backup (tasks.db.clone). The target is never writable: it is
fenced by the settings whenever MariaDB runs.
"""

from __future__ import annotations

from tasks.core.pipe import PipeError, pipe
from tasks.db.clone import (
    BACKUP,
    START,
    STOP,
    ClonePaths,
    binlog_info_command,
    extract_command,
    parse_binlog_info,
    prepare_command,
    swap_command,
)
from tasks.db.deploy import admin_bootstrap_sql
from tasks.db.failover import CATCH_UP, _primary, _source, attach, rebuild_command
from tasks.db.roles import change_master_sql, root_command, root_sql
from tasks.db.sql import DbError, native_password_hash, scalar
from tasks.db.status import NodeStatus
from tasks.db.tier import Refused, Steps, Tier

STREAM_TIMEOUT = 1800.0


def _acks_elsewhere(primary: NodeStatus, target: NodeStatus, source: str | None) -> int:
    """Replicas other than the target that acknowledge the primary's commits."""
    target_acks = (target.reachable and target.replica is not None and source == primary.name
                   and target.replica.io_running == "Yes" and target.semi.slave_status)
    return primary.semi.clients - (1 if target_acks else 0)


def _preconditions(tier: Tier, name: str) -> NodeStatus:
    """The primary to clone from, or Refused (nothing changed)."""
    nodes = tier.statuses()
    primary = _primary(nodes)
    if primary is None:
        raise Refused("no node accepts writes: nothing to clone from (run "
                      "runbooks/db_status.py, then failover or switchover)")
    if primary.name == name:
        raise Refused(f"{name} is the primary: refusing to rebuild it (it holds the "
                      "acknowledged writes); rebuild a replica")
    target = nodes[name]
    source = _source(tier, target)
    if primary.semi.master_enabled and _acks_elsewhere(primary, target, source) < 1:
        raise Refused(f"{primary.name}'s commits wait for a replica's acknowledgement and no "
                      f"replica but {name} could give it: its writes would block during the "
                      "rebuild, and the backup with them. Accept writes without a copy first "
                      f"(recorded): runbooks/db_failover.py degrade, then "
                      f"{rebuild_command(name)} again (it turns semi-sync back on)")
    return primary


def _clone(tier: Tier, primary: str, name: str, paths: ClonePaths, steps: Steps) -> str:
    """The prepared clone in the staging directory; its GTID position."""
    with steps.step(f"stream a backup of {primary} into {name}:{paths.staging} "
                    "(mariadb-backup | controller | mbstream -x)"):
        try:
            done = pipe(tier.nr, primary, BACKUP, name, extract_command(paths),
                        STREAM_TIMEOUT)
        except PipeError as exc:
            raise DbError(str(exc)) from exc
        if not done.ok:
            raise DbError(f"the backup stream failed: {primary} exit {done.source_rc}: "
                          f"{done.source_err.strip()[-400:]}; {name} exit {done.sink_rc}: "
                          f"{done.sink_err.strip()[-400:]}")
    steps.say(f"  {done.bytes / 1e6:.1f} MB streamed")
    with steps.step(f"prepare the backup on {name}"):
        tier.on(name, root_command, command=prepare_command(paths), timeout=STREAM_TIMEOUT)
    position = parse_binlog_info(tier.on(name, root_command,
                                         command=binlog_info_command(paths)))
    steps.say(f"  the backup holds {primary}'s transactions up to {position}")
    return position


def _replace_data(tier: Tier, name: str, paths: ClonePaths, steps: Steps) -> None:
    """Stop MariaDB, swap in the clone, start (read-only), the node's own admin account."""
    with steps.step(f"stop mariadb on {name}"):
        tier.on(name, root_command, command=STOP)
    with steps.step(f"{name}: the clone becomes {paths.datadir} (the old data kept in "
                    f"{paths.aside})"):
        tier.on(name, root_command, command=swap_command(paths))
    with steps.step(f"start mariadb on {name} (it boots read-only)"):
        tier.on(name, root_command, command=START)
    origin = tier.target.admin_from(str(tier.host(name).hostname))
    with steps.step(f"{name}: its own admin account (not replicated), read_only checked"):
        tier.on(name, root_sql, sql=admin_bootstrap_sql(
            origin, native_password_hash(tier.target.secrets.admin), tier.target.tls))
        with tier.conn(name) as conn:
            if scalar(conn, "SELECT @@GLOBAL.read_only") != 1:
                raise DbError(f"{name} started writable: fence it as root (SET GLOBAL "
                              "read_only = ON); check its settings")


def _follow(tier: Tier, name: str, primary: str, position: str) -> None:
    host = tier.host(primary)
    sql = ("STOP SLAVE;\nRESET SLAVE ALL;\n"
           f"SET GLOBAL gtid_slave_pos = '{position}';\n"
           + change_master_sql(host.hostname, int(host["db_port"]),
                               tier.target.secrets.replication, demote=False,
                               tls=tier.target.tls)
           + "START SLAVE;\n")
    tier.on(name, root_sql, sql=sql)


def rebuild(tier: Tier, name: str, steps: Steps, catch_up: float = CATCH_UP) -> None:
    """Re-clone `name` from the actual primary and make it its replica (module docstring)."""
    primary = _preconditions(tier, name)
    with tier.conn(primary.name) as conn:
        paths = ClonePaths.of(str(scalar(conn, "SELECT @@GLOBAL.datadir")))
    steps.say(f"rebuild: re-clone {name} from the primary {primary.name} (mariadb-backup)")
    position = _clone(tier, primary.name, name, paths, steps)
    _replace_data(tier, name, paths, steps)
    with steps.step(f"{name}: gtid_slave_pos = {position}, replicate from {primary.name} "
                    "(GTID slave_pos)"):
        _follow(tier, name, primary.name, position)
    attach(tier, name, primary.name, steps, catch_up)
    total = sum(ms for _, ms in steps.done)
    steps.say(f"rebuild done: {name} replicates from {primary.name} (steps took "
              f"{total / 1000:.1f} s)")
