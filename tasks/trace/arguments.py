"""Checks of trace.py's command-line values (pure): argparse `type=` functions and the
options that only make sense together, so that a bad one exits 2 before any work."""

from __future__ import annotations

import argparse

from tasks.core.arguments import count, seconds
from tasks.core.arguments import output_path_or_stdout as output_path

__all__ = ["check_combination", "count", "output_path", "seconds"]


def check_combination(args: argparse.Namespace) -> str | None:
    """What is wrong with the options taken together (None: nothing)."""
    wrong = (("--json", args.json), ("--wait", args.wait)) if args.follow else (
        ("--group", args.group), ("--duration", args.duration))
    used = [name for name, value in wrong if value is not None]
    mode = "--requests" if args.follow else "--follow"
    return f"{', '.join(used)}: only with {mode}" if used else None
