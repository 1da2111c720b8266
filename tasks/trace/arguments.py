"""Checks of trace.py's command-line values (pure): argparse `type=` functions and the
options that only make sense together, so that a bad one exits 2 before any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A finite number of seconds in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a number of seconds from {low:g} to {high:g}, not {text!r}")
        return value

    return parse


def count(low: int, high: int) -> Callable[[str], int]:
    """A whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, not {text!r}")
        return value

    return parse


def output_path(text: str) -> Path:
    """A file to write ('-' for standard output): its folder must exist."""
    path = Path(text)
    if text == "-":
        return path
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file path")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {path.parent} of {path} does not exist")
    return path


def check_combination(args: argparse.Namespace) -> str | None:
    """What is wrong with the options taken together (None: nothing)."""
    wrong = (("--json", args.json), ("--wait", args.wait)) if args.follow else (
        ("--group", args.group), ("--duration", args.duration))
    used = [name for name, value in wrong if value is not None]
    mode = "--requests" if args.follow else "--follow"
    return f"{', '.join(used)}: only with {mode}" if used else None
