"""Helpers of the inventory check tests: copies of the repository's inventory, edited."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tasks.core.inventory_check import InventoryProblem, check_inventory

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory"

Data = dict[str, Any]


def real(name: str) -> Data:
    return yaml.safe_load((INVENTORY / f"{name}.yaml").read_text())


def write(tmp_path: Path, hosts: Data | str | None = None, groups: Data | str | None = None,
          defaults: Data | str | None = None) -> list[Path]:
    """Write the three files (the real ones unless given) to tmp_path; return their paths."""
    paths = []
    for name, given in (("hosts", hosts), ("groups", groups), ("defaults", defaults)):
        if given is None:
            given = real(name)
        text = given if isinstance(given, str) else yaml.safe_dump(given, sort_keys=False)
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def run(tmp_path: Path, hosts: Data | str | None = None, groups: Data | str | None = None,
        defaults: Data | str | None = None, bridge: str | None = None) -> list[InventoryProblem]:
    """Write the three files and check them (``bridge``: the lab bridge address, lab mode)."""
    return check_inventory(*write(tmp_path, hosts, groups, defaults), bridge)


def edited(name: str, change: Callable[[Data], None]) -> Data:
    data = copy.deepcopy(real(name))
    change(data)
    return data


def fields(problems: list[InventoryProblem]) -> set[tuple[str | None, str]]:
    return {(p.host, p.field) for p in problems}
