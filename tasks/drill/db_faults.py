"""The faults a db drill injects on the primary, as data: how to break it, how to put it
back. The restore only brings the node back (booting read-only); the drill then rejoins
it as a replica (tasks.db.failover.rejoin).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from tasks.core.settings import ProjectError
from tasks.db.failover import switchover
from tasks.db.roles import root_command
from tasks.db.tier import Steps
from tasks.drill.db_context import DbDrillContext
from tasks.drill.proxies import crash_node, drop_connection

# mysqld_safe would start mariadbd again at once: it goes first.
KILL_MARIADB = "pkill -KILL -x mysqld_safe; pkill -KILL -x mariadbd; sleep 0.3; ! pidof mariadbd"
DbAction = Callable[[DbDrillContext, str, str, Steps], None]  # ctx, primary, replica, steps


@dataclass(frozen=True)
class DbFault:
    """One way to fail the primary, and how to bring it back."""

    name: str
    story: str
    planned: bool  # a switchover: no failover is expected, nothing to restore
    inject: DbAction
    restore: DbAction
    on_replica: bool = False  # the replica is faulted: no failover; writes must block


def _crash(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    crash_node(ctx.lab, ctx.tier.nr, primary)


def _crash_replica(ctx: DbDrillContext, _primary: str, replica: str, _steps: Steps) -> None:
    crash_node(ctx.lab, ctx.tier.nr, replica)


def _restart_replica(ctx: DbDrillContext, _primary: str, replica: str, _steps: Steps) -> None:
    ctx.lab.restart(replica)
    drop_connection(ctx.tier.nr, replica)


def _restart(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    ctx.lab.restart(primary)
    drop_connection(ctx.tier.nr, primary)


def _kill(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    ctx.tier.on(primary, root_command, command=KILL_MARIADB)


def _freeze(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    ctx.tier.on(primary, root_command, command="pkill -STOP -x mariadbd")


def _put_down(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    """A frozen primary is never thawed (it would still be writable): it is killed (as a
    fencing agent would) and boots read-only, dropping what no replica acknowledged."""
    ctx.tier.on(primary, root_command, command=KILL_MARIADB)


def _cut(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    ctx.lab.cut_link(primary)


def _power_cycle_then_plug(ctx: DbDrillContext, primary: str, _replica: str,
                           _steps: Steps) -> None:
    """The cut-off primary is still writable: its mariadbd is killed from the lab's side
    (the cable is cut) before the cable comes back, so it boots read-only."""
    subprocess.run(ctx.lab.nsenter_argv(primary, ["sh", "-c", KILL_MARIADB]), check=True,
                   capture_output=True, timeout=30)
    ctx.lab.restore_link(primary)
    drop_connection(ctx.tier.nr, primary)


def _nothing(_ctx: DbDrillContext, _primary: str, _replica: str, _steps: Steps) -> None:
    return None


def _switchover(ctx: DbDrillContext, _primary: str, replica: str, steps: Steps) -> None:
    switchover(ctx.tier, replica, steps)


DB_FAULTS: dict[str, DbFault] = {f.name: f for f in (
    DbFault("crash", "the primary's node dies (every process gone, cable down): no RST, "
            "the replica hears nothing more; the watcher confirms by its silence",
            False, _crash, _restart),
    DbFault("kill", "mariadbd (and mysqld_safe) killed on the primary: connections are "
            "refused at once, the replica's IO thread drops", False, _kill, _nothing),
    DbFault("hang", "mariadbd frozen (SIGSTOP) on the primary: connections open but nothing "
            "answers; the replica hears nothing more", False, _freeze, _put_down),
    DbFault("link", "the primary's cable is cut: it keeps running, writable, but its commits "
            "wait for an acknowledgement that never comes", False, _cut,
            _power_cycle_then_plug),
    DbFault("replica-crash", "the replica's node dies: the primary's commits must wait for "
            "its acknowledgement (no silent fallback to async) until it is back",
            False, _crash_replica, _restart_replica, on_replica=True),
    DbFault("switchover", "a planned switchover to the replica under load "
            "(runbooks/db_failover.py switchover)", True, _switchover, _nothing),
)}


def db_fault_named(name: str) -> DbFault:
    fault = DB_FAULTS.get(name)
    if fault is None:
        raise ProjectError(f"--fault {name}: not a fault of group db; its faults are: "
                           f"{', '.join(DB_FAULTS)}", 2)
    return fault
