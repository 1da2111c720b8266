"""The project's config.yaml: where the inventory is, and whether the targets are the lab.

`load_settings` reads config.yaml and resolves the inventory paths from the config file's
folder, so runbooks work from any directory. `Settings.is_lab` is the one answer to "local
lab or real machines"; everything else is given the Settings, never re-reads the file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"
EXIT_BAD_INVENTORY = 2

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


def fail(exc: ProjectError) -> None:
    """Print a ProjectError for a runbook user and exit with its code."""
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(exc.exit_code)
