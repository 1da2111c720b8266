"""The faults a db drill injects on the primary, as data: how to break it, how to put it
back. The restore only brings the node back (booting read-only); the drill then rejoins
it as a replica (tasks.db.failover.rejoin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tasks.core.settings import ProjectError
from tasks.db.failover import switchover
from tasks.db.roles import root_command
from tasks.db.tier import Steps
from tasks.drill.db_context import DbDrillContext
from tasks.drill.proxies import drop_connection

DbAction = Callable[[DbDrillContext, str, str, Steps], None]  # ctx, primary, replica, steps


@dataclass(frozen=True)
class DbFault:
    """One way to fail the primary, and how to bring it back."""

    name: str
    story: str
    planned: bool  # a switchover: no failover is expected, nothing to restore
    inject: DbAction
    restore: DbAction


def _crash(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    ctx.lab.crash(primary)


def _restart(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    ctx.lab.restart(primary)
    drop_connection(ctx.tier.nr, primary)


def _kill(ctx: DbDrillContext, primary: str, _replica: str, _steps: Steps) -> None:
    # mysqld_safe would start mariadbd again at once: it goes first.
    ctx.tier.on(primary, root_command, command="pkill -KILL -x mysqld_safe; "
                "pkill -KILL -x mariadbd; sleep 0.3; ! pidof mariadbd")


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
    DbFault("switchover", "a planned switchover to the replica under load "
            "(runbooks/db_failover.py switchover)", True, _switchover, _nothing),
)}


def db_fault_named(name: str) -> DbFault:
    fault = DB_FAULTS.get(name)
    if fault is None:
        raise ProjectError(f"--fault {name}: not a fault of group db; its faults are: "
                           f"{', '.join(DB_FAULTS)}", 2)
    return fault
