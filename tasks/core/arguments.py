"""Checks of command-line values shared by the runbooks, as argparse `type=` functions (pure).

Each returns the parsed value or raises argparse.ArgumentTypeError saying what is wanted, so
argparse exits 2 with one line naming the option, before any work or connection.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from collections.abc import Callable
from pathlib import Path


def seconds(low: float, high: float) -> Callable[[str], float]:
    """A finite number of seconds in [low, high] (no nan, no inf)."""

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


def count(low: int, high: int, zero: str = "") -> Callable[[str], int]:
    """A whole number in [low, high]; `zero`: what 0 means, for the message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            meaning = f" ({zero})" if zero else ""
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low}{meaning} to {high}, not {text!r}")
        return value

    return parse


def output_path(text: str, stdout_ok: bool = False) -> Path:
    """A file to write: its folder must exist, and it must not be a folder itself
    (`stdout_ok`: '-' means standard output)."""
    if not text:
        raise argparse.ArgumentTypeError("must be a file path, not ''")
    path = Path(text)
    if stdout_ok and text == "-":
        return path
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file path")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise argparse.ArgumentTypeError(
            f"the folder {folder} of {path} {what}; create it first")
    return path


def output_path_or_stdout(text: str) -> Path:
    """Like output_path, with '-' for standard output."""
    return output_path(text, stdout_ok=True)


def input_file(text: str) -> Path:
    """A file to read: it must exist and be a regular file."""
    path = Path(text)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise argparse.ArgumentTypeError(f"{path}: {what}")
    return path


def ipv4(text: str) -> str:
    """An IPv4 address, e.g. 10.5.1.110."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an IPv4 address such as 10.5.1.110, not {text!r}") from None
