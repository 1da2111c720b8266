"""Load the three SimpleInventory files for the check: every entry, key and value is checked
where it is written (file, host or group, field), then values are resolved the way Nornir
does (host data, the host's groups in order with their parents, defaults).

A value that failed its check is kept as ``INVALID``: it was reported once, where it is set,
and the checks that resolve it for a host skip it instead of reporting it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.inventory_values import (
    DATA_FIELDS,
    ENTRY_FIELDS,
    GROUP_NAME,
    HOST_NAME,
    shown,
)
from tasks.core.yaml_safe import Duplicate, load_yaml

MISSING = object()
INVALID = object()
ENTRY_KEYS: dict[str, tuple[str, ...]] = {
    "hosts": (*ENTRY_FIELDS, "groups", "data"),
    "groups": (*ENTRY_FIELDS, "groups", "data"),
    "defaults": (*ENTRY_FIELDS, "data"),
}


@dataclass(frozen=True)
class InventoryProblem:
    """One problem found in the inventory; ``group`` is set when the value comes from a group."""

    file: str
    host: str | None
    field: str
    message: str
    group: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.host is not None:
            where.append(f"host {shown(self.host)}")
        if self.group is not None:
            where.append(f"group {shown(self.group)}")
        where.append(f"field {self.field}")
        return ": ".join([*where, self.message])


def display(path: Path) -> str:
    """Show a path relative to the working directory when it lies under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _duplicate_problem(kind: str, dup: Duplicate) -> tuple[str | None, str, str]:
    """(host or group name, field, message) for a repeated key."""
    where = f"line {dup.line} repeats line {dup.first_line}; Nornir refuses repeated keys"
    if kind == "defaults":
        return None, ".".join([*dup.path, dup.key]), f"duplicate key ({where})"
    if not dup.path:
        what = "host" if kind == "hosts" else "group"
        return dup.key, "name", f"{what} defined twice ({where})"
    return dup.path[0], ".".join([*dup.path[1:], dup.key]), f"duplicate key ({where})"


class InventoryFiles:
    """The loaded files, the problems found so far, and Nornir's resolution of values."""

    def __init__(self, hosts_file: Path, groups_file: Path, defaults_file: Path) -> None:
        self.names = {"hosts": display(hosts_file), "groups": display(groups_file),
                      "defaults": display(defaults_file)}
        self.problems: list[InventoryProblem] = []
        self._seen: set[InventoryProblem] = set()
        self.hosts: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.defaults: dict[str, Any] = {"data": {}}
        self.ok = True
        for kind, path in (("hosts", hosts_file), ("groups", groups_file),
                           ("defaults", defaults_file)):
            self._load_file(kind, path)

    # -- reporting ---------------------------------------------------------------------------

    def add(self, kind: str, host: str | None, field: str, message: str,
            group: str | None = None) -> None:
        problem = InventoryProblem(self.names[kind], host, field, message, group)
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append(problem)

    def add_entry(self, kind: str, name: str | None, field: str, message: str) -> None:
        """Report a problem of the host, group or defaults entry ``name`` of file ``kind``."""
        if kind == "hosts":
            self.add(kind, name, field, message)
        else:
            self.add(kind, None, field, message, group=name)

    def add_for(self, host: str, key: str, message: str) -> None:
        """Report a problem on a host's resolved value, in the file where it is set."""
        source = self.source(host, key)
        if source is None or source == "host":
            self.add("hosts", host, key, message)
        elif source == "defaults":
            self.add("defaults", None, key, message)
        else:
            self.add("groups", None, key, message, group=source)

    # -- loading -----------------------------------------------------------------------------

    def _load_file(self, kind: str, path: Path) -> None:
        loaded = load_yaml(path)
        if loaded.error is not None:
            self.add(kind, None, "(file)", loaded.error)
            self.ok = False
            return
        for dup in loaded.duplicates:
            self.add_entry(kind, *_duplicate_problem(kind, dup))
        data = {} if loaded.data is None else loaded.data
        if not isinstance(data, dict):
            self.add(kind, None, "(file)", f"must be a mapping, not {type(data).__name__}")
            self.ok = False
        elif kind == "defaults":
            self.defaults = self._entry(kind, None, data) or {"data": {}}
        else:
            self._load_entries(kind, data)

    def _load_entries(self, kind: str, data: dict[Any, Any]) -> None:
        target = self.hosts if kind == "hosts" else self.groups
        pattern = HOST_NAME if kind == "hosts" else GROUP_NAME
        for name, raw in data.items():
            if not isinstance(name, str):
                self.add_entry(kind, None, "name", f"{name!r} is not a name (write a string)")
                continue
            if not pattern.fullmatch(name):
                rule = ("a DNS label (a-z, 0-9, '-'): it becomes <name>.<domain>"
                        if kind == "hosts" else "a group name (letters, digits, '_', '-')")
                self.add_entry(kind, name, "name", f"{name!r} must be {rule}")
            entry = self._entry(kind, name, raw)
            if entry is not None:
                target[name] = entry

    def _entry(self, kind: str, name: str | None, raw: Any) -> dict[str, Any] | None:
        """The checked entry (groups a list of names, data a mapping), None if unusable."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.add_entry(kind, name, "(entry)", "must be a mapping of settings")
            return None
        entry: dict[str, Any] = {"data": {}, "groups": []}
        for key, value in raw.items():
            if key not in ENTRY_KEYS[kind]:
                self.add_entry(kind, name, shown(key),
                               f"unknown key (known: {', '.join(ENTRY_KEYS[kind])})")
            elif key == "data":
                entry["data"] = self._data(kind, name, value)
            elif key == "groups":
                entry["groups"] = self._group_list(kind, name, value)
            else:
                entry[key] = self._checked(kind, name, key, ENTRY_FIELDS[key](value), value)
        return entry

    def _checked(self, kind: str, name: str | None, field: str, problems: list[str],
                 value: Any) -> Any:
        for message in problems:
            self.add_entry(kind, name, field, message)
        return INVALID if problems else value

    def _data(self, kind: str, name: str | None, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add_entry(kind, name, "data", "must be a mapping")
            return {}
        data: dict[str, Any] = {}
        for key, value in raw.items():
            check = DATA_FIELDS.get(key) if isinstance(key, str) else None
            if check is None:
                self.add_entry(kind, name, shown(key),
                               "unknown data key: the framework reads none of that name "
                               "(a typo?)")
            else:
                data[key] = self._checked(kind, name, key, check(value), value)
        return data

    def _group_list(self, kind: str, name: str | None, raw: Any) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.add_entry(kind, name, "groups", "must be a list of group names")
            return []
        good = [g for g in raw if isinstance(g, str) and GROUP_NAME.fullmatch(g)]
        for bad in (g for g in raw if g not in good):
            self.add_entry(kind, name, "groups", f"{bad!r} is not a group name")
        return good

    # -- resolution --------------------------------------------------------------------------

    def group_chain(self, groups: list[str]) -> list[str]:
        """Known groups in Nornir's lookup order: each group, then its parents, depth first,
        each group once (so cycles and shared parents end)."""
        chain: dict[str, None] = {}
        stack = list(reversed(groups))
        while stack:
            group = stack.pop()
            if group in chain or group not in self.groups:
                continue
            chain[group] = None
            stack.extend(reversed(self.groups[group]["groups"]))
        return list(chain)

    def host_groups(self, host: str) -> list[str]:
        return list(self.hosts[host]["groups"])

    def source(self, host: str, key: str) -> str | None:
        """Where a host's data key is set: "host", a group name, "defaults" or None."""
        if key in self.hosts[host]["data"]:
            return "host"
        for group in self.group_chain(self.host_groups(host)):
            if key in self.groups[group]["data"]:
                return group
        if self.defaults["data"].get(key) is not None:
            return "defaults"
        return None

    def value(self, host: str, key: str) -> Any:
        """A host's data value, resolved through groups and defaults; MISSING or INVALID."""
        source = self.source(host, key)
        if source is None:
            return MISSING
        if source == "host":
            return self.hosts[host]["data"][key]
        if source == "defaults":
            return self.defaults["data"][key]
        return self.groups[source]["data"][key]

    def require(self, host: str, key: str) -> Any:
        """The host's valid value of ``key``, or None (missing is reported; invalid was)."""
        value = self.value(host, key)
        if value is MISSING:
            self.add("hosts", host, key, "missing (set it on the host, its group or defaults)")
        return None if value is MISSING or value is INVALID else value
