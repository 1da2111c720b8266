"""Refuse to send lab traffic anywhere but through the lab bridge.

The lab's 10.5.1.0/24 only exists behind the bridge; without it, packets for those
addresses would leave the machine by the default route. Every piece of code that connects
to an inventory host in lab mode calls `ensure_lab_targets` first.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tasks.core import state
from tasks.core.settings import ProjectError

if TYPE_CHECKING:
    from tasks.core.settings import Settings


class LabNotReady(ProjectError):
    """The lab is down, or an address would not go through the lab bridge (exit code 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"refusing to connect: {message}", 3)


def route_device(address: str) -> str | None:
    """The interface the kernel would use to reach address (None if no route)."""
    proc = subprocess.run(
        ["ip", "-j", "route", "get", address], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    routes = json.loads(proc.stdout or "[]")
    return routes[0].get("dev") if routes else None


def bridge_is_up(bridge: str) -> bool:
    proc = subprocess.run(
        ["ip", "-j", "link", "show", "dev", bridge], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return False
    links = json.loads(proc.stdout or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


def check_addresses(bridge: str, addresses: Iterable[str]) -> list[str]:
    """Problems that forbid sending traffic to these addresses (empty: all go via bridge)."""
    if not bridge_is_up(bridge):
        return [f"the lab bridge {bridge} is not up (run: python runbooks/lab.py up)"]
    problems = []
    for address in addresses:
        dev = route_device(address)
        if dev != bridge:
            problems.append(f"{address} would be reached via {dev or 'no route'}, not {bridge}")
    return problems


def ensure_lab_targets(settings: Settings, addresses: Iterable[str]) -> None:
    """Raise ProjectError unless the lab is up and every address is behind its bridge."""
    problems = check_addresses(settings.lab_bridge, addresses)
    if not state.KEY_FILE.exists():
        problems.append(f"no lab key at {state.KEY_FILE} (run: python runbooks/lab.py up)")
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise LabNotReady(
            "the targets are the local lab (config.yaml "
            f"user_defined.target: lab) but:\n{listed}"
        )
