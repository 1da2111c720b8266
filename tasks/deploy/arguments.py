"""Checks of the deploy's command-line values, as argparse `type=` functions (pure).

Each returns the parsed value or raises argparse.ArgumentTypeError saying what is wanted, so
argparse exits 2 with one line naming the option, before any work or connection. (The
drill's own, tasks/drill/arguments.py, has the same shape.)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A finite number of seconds in [low, high] (no nan, no inf)."""

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


def count(low: int, high: int, zero: str = "") -> Callable[[str], int]:
    """A whole number in [low, high]; `zero`: what 0 means, for the message."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            meaning = f" ({zero})" if zero else ""
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low}{meaning} to {high}, not {text!r}")
        return value

    return parse


def output_path(text: str) -> Path:
    """A file to write: its folder must exist, and it must not be a folder itself."""
    if not text:
        raise argparse.ArgumentTypeError("must be a file path, not ''")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file path")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise argparse.ArgumentTypeError(
            f"the folder {folder} of {path} {what}; create it first")
    return path
