"""The faults a drill can inject, as data: how to break a router, what keepalived should do,
how to put the router back.

Each `Fault` holds two actions on (context, target router). `crash` and `link` act on the
lab's namespaces (tp5lab, given in the context); `stop` and `nginx` run over SSH, so they
work on real machines too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tasks.core.settings import ProjectError
from tasks.drill.proxies import DrillError, crash_node, drop_connection, sh

if TYPE_CHECKING:
    from tasks.drill.context import DrillContext, LabControl

Action = Callable[["DrillContext", str], None]
SERVICES_TIMEOUT = 10.0  # nginx and keepalived must run again this soon after a restore


@dataclass(frozen=True)
class Fault:
    """One way to fail the MASTER, what keepalived should do, and how to undo it."""

    name: str
    story: str
    bound_kind: Literal["crash", "clean_stop"]  # crash: the backup waits master-down
    needs_lab: bool
    inject: Action
    restore: Action
    detect_s: float = 0.0  # extra time before keepalived notices (a tracked script)


def ensure_services(ctx: DrillContext, target: str) -> None:
    """Start nginx and keepalived on the target if they are not running (after a reboot)."""
    deadline = time.monotonic() + SERVICES_TIMEOUT
    command = ("for s in nginx keepalived; do pidof $s >/dev/null || service $s start; done; "
               "pidof nginx >/dev/null && pidof keepalived >/dev/null")
    while True:
        try:
            sh(ctx.nr, target, command)
            return
        except DrillError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _lab(ctx: DrillContext) -> LabControl:
    if ctx.lab is None:
        raise DrillError("this fault needs the local lab (config.yaml target: lab)")
    return ctx.lab


def _crash(ctx: DrillContext, target: str) -> None:
    crash_node(_lab(ctx), ctx.nr, target)


def _restart(ctx: DrillContext, target: str) -> None:
    _lab(ctx).restart(target)
    drop_connection(ctx.nr, target)
    ensure_services(ctx, target)


def _cut(ctx: DrillContext, target: str) -> None:
    _lab(ctx).cut_link(target)


def _plug(ctx: DrillContext, target: str) -> None:
    _lab(ctx).restore_link(target)


def _stop_keepalived(ctx: DrillContext, target: str) -> None:
    sh(ctx.nr, target, "service keepalived stop")


def _kill_nginx(ctx: DrillContext, target: str) -> None:
    sh(ctx.nr, target, "pkill -9 -x nginx; sleep 0.05; ! pidof nginx")


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("crash",
          "the whole node dies (PID 1 killed, every process gone, link down): it sends no "
          "goodbye, so the BACKUP waits the master-down interval (3 x advert_int + skew)",
          "crash", True, _crash, _restart),
    Fault("link",
          "the node's cable is cut: it keeps running (and goes to FAULT on carrier loss) but "
          "nothing it sends arrives, so the BACKUP waits the master-down interval",
          "crash", True, _cut, _plug),
    Fault("stop",
          "keepalived stops cleanly: it sends a priority-0 advertisement, so the BACKUP takes "
          "over after its skew time alone",
          "clean_stop", False, _stop_keepalived, ensure_services),
    Fault("nginx",
          "only nginx dies (SIGKILL): keepalived's chk_nginx fails (fall x interval), the "
          "instance goes to FAULT and sends priority 0; the BACKUP takes over after its skew",
          "clean_stop", False, _kill_nginx, ensure_services, detect_s=2.5),
)}


def fault_named(name: str, is_lab: bool) -> Fault:
    """The fault called `name`; ProjectError (exit 2) if unknown or impossible here."""
    fault = FAULTS.get(name)
    if fault is None:
        raise ProjectError(f"--fault {name}: unknown; the faults are: {', '.join(FAULTS)}", 2)
    if fault.needs_lab and not is_lab:
        usable = ", ".join(f.name for f in FAULTS.values() if not f.needs_lab)
        raise ProjectError(f"--fault {name} needs the local lab; on real machines use one of: "
                           f"{usable}", 2)
    return fault
