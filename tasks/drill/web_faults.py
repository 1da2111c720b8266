"""The faults a web drill can inject on a web server, as data: how to break it, how to put
it back. `crash` acts on the lab's namespaces; `stop` and `hang` run over SSH, so they work
on real machines too. Nodes have their own PID namespace: `pkill` inside one signals only
that node's processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.core.settings import ProjectError
from tasks.drill.proxies import DrillError, crash_node, drop_connection, sh

if TYPE_CHECKING:
    from tasks.drill.context import LabControl
    from tasks.drill.web_context import WebDrillContext

WebAction = Callable[["WebDrillContext", str], None]
APACHE_TIMEOUT = 15.0  # apache2 must run again this soon after a restore


@dataclass(frozen=True)
class WebFault:
    """One way to fail a web server, and how to undo it."""

    name: str
    story: str
    needs_lab: bool
    inject: WebAction
    restore: WebAction


def ensure_apache(ctx: WebDrillContext, target: str) -> None:
    """Start apache2 on the target unless it runs (after a reboot), within APACHE_TIMEOUT."""
    deadline = time.monotonic() + APACHE_TIMEOUT
    command = "pidof apache2 >/dev/null || service apache2 start >/dev/null; pidof apache2"
    while True:
        try:
            sh(ctx.webs, target, command)
            return
        except DrillError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _crash(ctx: WebDrillContext, target: str) -> None:
    crash_node(_lab(ctx), ctx.webs, target)


def _restart(ctx: WebDrillContext, target: str) -> None:
    _lab(ctx).restart(target)
    drop_connection(ctx.webs, target)
    ensure_apache(ctx, target)


def _lab(ctx: WebDrillContext) -> LabControl:
    if ctx.lab is None:
        raise DrillError("this fault needs the local lab (config.yaml target: lab)")
    return ctx.lab


def _stop(ctx: WebDrillContext, target: str) -> None:
    sh(ctx.webs, target, "service apache2 stop >/dev/null; ! pidof apache2")


def _start(ctx: WebDrillContext, target: str) -> None:
    sh(ctx.webs, target, "service apache2 start >/dev/null")
    ensure_apache(ctx, target)


def _freeze(ctx: WebDrillContext, target: str) -> None:
    sh(ctx.webs, target, "pkill -STOP -x apache2")


def _thaw(ctx: WebDrillContext, target: str) -> None:
    sh(ctx.webs, target, "pkill -CONT -x apache2; pidof apache2 >/dev/null")


WEB_FAULTS: dict[str, WebFault] = {f.name: f for f in (
    WebFault("crash",
             "the whole node dies (every process gone, link down): new connections to it get "
             "no answer (NGINX gives up after proxy_connect_timeout), requests it was serving "
             "get none either (proxy_read_timeout); NGINX retries them on another server",
             True, _crash, _restart),
    WebFault("stop",
             "Apache stops cleanly: connections to it are refused at once, NGINX retries on "
             "another server without waiting",
             False, _stop, _start),
    WebFault("hang",
             "Apache is frozen (SIGSTOP): the kernel still accepts connections, so NGINX "
             "waits proxy_read_timeout for an answer before retrying on another server",
             False, _freeze, _thaw),
)}


def web_fault_named(name: str, is_lab: bool) -> WebFault:
    """The web fault called `name`; ProjectError (exit 2) if unknown or impossible here."""
    fault = WEB_FAULTS.get(name)
    if fault is None:
        raise ProjectError(f"--fault {name}: not a fault of group web; its faults are: "
                           f"{', '.join(WEB_FAULTS)}", 2)
    if fault.needs_lab and not is_lab:
        usable = ", ".join(f.name for f in WEB_FAULTS.values() if not f.needs_lab)
        raise ProjectError(f"--fault {name} needs the local lab; on real machines use one of: "
                           f"{usable}", 2)
    return fault
