"""Checks of the drill's command-line values, as argparse `type=` functions (pure).

Each returns the parsed value or raises argparse.ArgumentTypeError with a message that says
what is wanted, so argparse exits 2 with one line naming the option, before any work.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from collections.abc import Callable
from pathlib import Path

from tasks.core.settings import ProjectError
from tasks.drill.context import check_drillable
from tasks.drill.faults import FAULTS
from tasks.drill.web_faults import WEB_FAULTS

# The faults of each drillable group (tasks.drill.faults, tasks.drill.web_faults).
GROUP_FAULTS: dict[str, tuple[str, ...]] = {"rp": tuple(FAULTS), "web": tuple(WEB_FAULTS)}
# Options that only make sense with a VRRP capture (the proxy drill).
CAPTURE_OPTIONS = ("capture", "pcap", "iface")


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A finite number of seconds in [low, high]."""

    def parse(text: str) -> float:
        try:
            value: float | None = float(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a number of seconds from {low:g} to {high:g}, not {text!r}")
        return value

    return parse


def count(low: int, high: int) -> Callable[[str], int]:
    """A whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, not {text!r}")
        return value

    return parse


def drillable_group(text: str) -> str:
    """A group the drill knows how to fault (tasks.drill.context.DRILLABLE_GROUPS)."""
    try:
        check_drillable(text)
    except ProjectError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--group {text}: ")) from None
    return text


def ipv4(text: str) -> str:
    """An IPv4 address, e.g. 10.5.1.110."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an IPv4 address such as 10.5.1.110, not {text!r}") from None


def output_path(text: str) -> Path:
    """A file to write: its folder must exist, and it must not be a folder itself."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file path")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise argparse.ArgumentTypeError(
            f"the folder {folder} of {path} {what}; create it first")
    return path


def input_file(text: str) -> Path:
    """A file to read: it must exist and be a regular file."""
    path = Path(text)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise argparse.ArgumentTypeError(f"{path}: {what}")
    return path


def combination_problem(group: str, fault: str, given: set[str]) -> str | None:
    """What is wrong with a fault or option for the group (`given`: the options set), or
    None: each group has its own faults; the web tier has no VRRP to capture."""
    faults = GROUP_FAULTS.get(group, ())
    if fault not in faults:
        return (f"--fault {fault}: not a fault of group {group}; its faults are: "
                f"{', '.join(faults)}")
    capture_only = [f"--{o}" for o in CAPTURE_OPTIONS if o in given]
    if group != "rp" and capture_only:
        return (f"{', '.join(capture_only)}: the {group} tier has no VRRP to capture; "
                "these go with --group rp")
    return None
