"""Reading and commanding the VRRP routers over SSH, for the drill.

Every call tolerates a dead node (that is what a drill makes): a failed connection is
dropped so the next call opens a fresh one.
"""

from __future__ import annotations

from typing import Protocol

from nornir.core import Nornir
from nornir.core.task import Result

from tasks.core.connection import CONNECTION
from tasks.core.remote import run_command
from tasks.deploy.checks import read_addresses, vip_holders


class DrillError(Exception):
    """A command of the drill failed on a router."""


class Crashes(Protocol):
    """The lab control's crash (tp5lab.control.Lab: the drills' lab protocols have it)."""

    def crash(self, name: str) -> None: ...


def read_vip_holders(nr: Nornir, vip: str, interface: str) -> tuple[list[str], list[str]]:
    """(routers of `nr` holding the VIP now, routers that could not be read), both sorted."""
    results = nr.run(task=read_addresses, interface=interface, on_failed=True)
    addresses = {h: r[0].result for h, r in results.items() if not r.failed}
    unreadable = sorted(h for h, r in results.items() if r.failed)
    for host in unreadable:
        drop_connection(nr, host)
    return vip_holders(addresses, vip), unreadable


def crash_node(lab: Crashes, nr: Nornir, host: str) -> None:
    """Crash a lab node, its SSH connection in `nr` closed cleanly first: a stale one would be
    reset once the node is back, and paramiko prints "Socket exception: Connection reset by
    peer" then."""
    drop_connection(nr, host)
    lab.crash(host)


def drop_connection(nr: Nornir, host: str) -> None:
    """Forget the host's SSH connection (after a crash or a restart it is stale)."""
    try:
        nr.inventory.hosts[host].close_connections()
    except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is gone anyway
        nr.inventory.hosts[host].connections.pop(CONNECTION, None)


def sh(nr: Nornir, host: str, command: str, timeout: float = 30) -> str:
    """Run a command on one host; DrillError naming host, command and output on failure."""
    result = nr.filter(name=host).run(task=lambda t: Result(
        host=t.host, result=run_command(t, command, timeout=timeout)), on_failed=True)[host]
    if result.failed:
        drop_connection(nr, host)
        raise DrillError(f"{host}: `{command}`: {result[0].exception}")
    out = result[0].result
    if not out.ok:
        raise DrillError(f"{host}: `{command}` exited {out.rc}: {out.stderr.strip()}")
    return out.stdout
