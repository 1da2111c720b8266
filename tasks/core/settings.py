"""The project's config.yaml: where the inventory is, and whether the targets are the lab.

`load_settings` reads config.yaml, checks it (``tasks.core.config_check``: exit 2 naming the
file and field for anything unsupported) and resolves the inventory paths from its folder, so
runbooks work from any directory. `Settings.is_lab` is the one answer to "local lab or real
machines"; everything else is given the Settings, never re-reads the file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.config_check import check_config
from tasks.core.yaml_safe import load_yaml

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


def _load_raw(path: Path) -> dict[str, Any]:
    """config.yaml's checked content, or ProjectError (exit 2) listing every problem."""
    if not path.is_file():
        raise ProjectError(f"{path}: config file not found", EXIT_BAD_INVENTORY)
    loaded = load_yaml(path)
    if loaded.error is not None:
        raise ProjectError(f"{path}: {loaded.error}", EXIT_BAD_INVENTORY)
    problems = [f"field {'.'.join([*d.path, d.key])}: line {d.line} repeats line "
                f"{d.first_line}" for d in loaded.duplicates]
    problems += check_config(loaded.data)
    if problems:
        lines = "\n".join(f"  - {path}: {p}" for p in problems)
        raise ProjectError(f"the config file has {len(problems)} problem(s); nothing was "
                           f"done:\n{lines}", EXIT_BAD_INVENTORY)
    return dict(loaded.data)


def load_settings(config_file: Path | str | None = None) -> Settings:
    """Read and check config.yaml (default: the repository's), resolve its inventory paths.

    Bad content (unknown section or key, wrong type, unsupported plugin) is a ProjectError
    with exit code 2 naming the file and every field at fault.
    """
    path = Path(config_file or DEFAULT_CONFIG).resolve()
    raw = _load_raw(path)
    options = (raw.get("inventory") or {}).get("options") or {}

    def resolve(key: str, default: str) -> Path:
        value = Path(options.get(key, default))
        return value if value.is_absolute() else path.parent / value

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
