"""Checks of the drill's command-line values, as argparse `type=` functions (pure).

Each returns the parsed value or raises argparse.ArgumentTypeError with a message that says
what is wanted, so argparse exits 2 with one line naming the option, before any work.
"""

from __future__ import annotations

import argparse

from tasks.core.arguments import count, input_file, ipv4, output_path, seconds
from tasks.core.settings import ProjectError
from tasks.drill.context import check_drillable
from tasks.drill.db_faults import DB_FAULTS
from tasks.drill.faults import FAULTS
from tasks.drill.web_faults import WEB_FAULTS

# The faults of each drillable group (tasks.drill.faults, tasks.drill.web_faults).
GROUP_FAULTS: dict[str, tuple[str, ...]] = {"rp": tuple(FAULTS), "web": tuple(WEB_FAULTS),
                                            "db": tuple(DB_FAULTS)}
# Options that only make sense with a VRRP capture (the proxy drill).
CAPTURE_OPTIONS = ("capture", "pcap", "iface")
# The shared checks (tasks.core.arguments) next to the drill's own, for the runbook.
__all__ = ["count", "input_file", "ipv4", "output_path", "seconds", "drillable_group",
           "combination_problem", "GROUP_FAULTS", "CAPTURE_OPTIONS"]


def drillable_group(text: str) -> str:
    """A group the drill knows how to fault (tasks.drill.context.DRILLABLE_GROUPS)."""
    try:
        check_drillable(text)
    except ProjectError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--group {text}: ")) from None
    return text


def combination_problem(group: str, fault: str, given: set[str]) -> str | None:
    """What is wrong with a fault or option for the group (`given`: the options set), or
    None: each group has its own faults; the web tier has no VRRP to capture."""
    faults = GROUP_FAULTS.get(group, ())
    if fault not in faults:
        return (f"--fault {fault}: not a fault of group {group}; its faults are: "
                f"{', '.join(faults)}")
    if group == "db" and "target" in given:
        return "--target: the db drill faults the actual primary (its replica takes over)"
    capture_only = [f"--{o}" for o in CAPTURE_OPTIONS if o in given]
    if group != "rp" and capture_only:
        return (f"{', '.join(capture_only)}: the {group} tier has no VRRP to capture; "
                "these go with --group rp")
    return None
