"""Load the project's config.yaml, check the inventory, and build Nornir.

`load_settings` reads config.yaml and resolves the inventory paths from the config file's
folder, so runbooks work from any directory. `build_nornir` refuses a bad inventory (every
problem listed, exit code 2) and, for the local lab, wires the lab's SSH key and pinned host
keys into the netmiko connection options.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.filter import F

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"
EXIT_BAD_INVENTORY = 2

# Failed hosts are reported by the runbooks; keep Nornir's tracebacks off the terminal.
logging.getLogger("nornir").addHandler(logging.NullHandler())
logging.getLogger("nornir").propagate = False


class ProjectError(Exception):
    """A problem with the user's files or environment, with an exit code for runbooks."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Settings:
    """What config.yaml says, with absolute inventory paths."""

    config_file: Path
    raw: dict[str, Any]
    hosts_file: Path
    groups_file: Path
    defaults_file: Path

    @property
    def target(self) -> str:
        return str(self.raw.get("user_defined", {}).get("target", "lab"))

    @property
    def is_lab(self) -> bool:
        return self.target == "lab"

    @property
    def lab_bridge(self) -> str:
        return str(self.raw.get("user_defined", {}).get("lab", {}).get("bridge", "tp5br0"))

    @property
    def lab_bridge_address(self) -> str:
        lab = self.raw.get("user_defined", {}).get("lab", {})
        return str(lab.get("bridge_address", "10.5.1.1/24"))


def load_settings(config_file: Path | str | None = None) -> Settings:
    """Read config.yaml (default: the repository's) and resolve its inventory paths."""
    path = Path(config_file or DEFAULT_CONFIG).resolve()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ProjectError(f"{path}: config file not found", EXIT_BAD_INVENTORY) from exc
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path}: not valid YAML: {exc}", EXIT_BAD_INVENTORY) from exc
    options = raw.get("inventory", {}).get("options", {})

    def resolve(key: str, default: str) -> Path:
        value = Path(options.get(key, default))
        return value if value.is_absolute() else path.parent / value

    target = raw.get("user_defined", {}).get("target", "lab")
    if target not in ("lab", "real"):
        raise ProjectError(
            f"{path}: field user_defined.target: must be 'lab' or 'real', not {target!r}",
            EXIT_BAD_INVENTORY,
        )
    return Settings(
        config_file=path,
        raw=raw,
        hosts_file=resolve("host_file", "inventory/hosts.yaml"),
        groups_file=resolve("group_file", "inventory/groups.yaml"),
        defaults_file=resolve("defaults_file", "inventory/defaults.yaml"),
    )


def check_inventory_or_raise(settings: Settings) -> None:
    """Raise ProjectError (exit 2) listing every inventory problem, if there is any."""
    from tasks.inventory_check import check_inventory

    problems = check_inventory(settings.hosts_file, settings.groups_file, settings.defaults_file)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ProjectError(
            f"the inventory has {len(problems)} problem(s); nothing was done:\n{lines}",
            EXIT_BAD_INVENTORY,
        )


def build_nornir(
    config_file: Path | str | None = None,
    groups: list[str] | tuple[str, ...] = (),
    hosts: list[str] | tuple[str, ...] = (),
    check_lab: bool = True,
) -> Nornir:
    """Check the inventory, build Nornir, apply the lab's connection settings and filters.

    In lab mode (and with check_lab) every selected host must be reached through the lab
    bridge, or ProjectError is raised before any connection is opened.
    """
    settings = load_settings(config_file)
    check_inventory_or_raise(settings)
    inventory = dict(settings.raw.get("inventory", {}))
    inventory["options"] = {
        "host_file": str(settings.hosts_file),
        "group_file": str(settings.groups_file),
        "defaults_file": str(settings.defaults_file),
    }
    config = {k: v for k, v in settings.raw.items() if k not in ("inventory",)}
    nr = select_hosts(InitNornir(inventory=inventory, **config), groups, hosts)
    from tasks.connection import share_netmiko_options

    if settings.is_lab:
        from lab.safety import apply_lab_connection_options

        apply_lab_connection_options(nr)
        if check_lab:
            ensure_reachable(nr, settings)
    share_netmiko_options(nr)
    return nr


def ensure_reachable(nr: Nornir, settings: Settings) -> None:
    """In lab mode, raise ProjectError (exit 3) unless every host of `nr` is behind the
    lab bridge; on real machines, nothing to check."""
    if settings.is_lab:
        from lab.safety import ensure_lab_targets

        ensure_lab_targets(settings, [h.hostname for h in nr.inventory.hosts.values()])


def select_hosts(
    nr: Nornir, groups: list[str] | tuple[str, ...] = (), hosts: list[str] | tuple[str, ...] = ()
) -> Nornir:
    """`nr` filtered to the named groups and hosts (ProjectError, exit 2, for unknown names)."""
    unknown = [h for h in hosts if h not in nr.inventory.hosts]
    unknown_groups = [g for g in groups if g not in nr.inventory.groups]
    if unknown or unknown_groups:
        names = ", ".join([f"host {h}" for h in unknown] + [f"group {g}" for g in unknown_groups])
        raise ProjectError(f"{nr.config.inventory.options['host_file']}: no such {names} in "
                           "the inventory", 2)
    if groups:
        nr = nr.filter(F(groups__any=list(groups)))
    if hosts:
        nr = nr.filter(F(name__any=list(hosts)))
    return nr


def fail(exc: ProjectError) -> None:
    """Print a ProjectError for a runbook user and exit with its code."""
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(exc.exit_code)
