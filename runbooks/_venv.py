"""Continue inside the project's virtualenv when a runbook is started by another Python.

`python runbooks/deploy.py ...` with the system's interpreter re-executes the same command
with `.venv/bin/python` (same arguments, working directory, standard input; `exec` keeps the
process, so signals and the exit code are the runbook's own). The set-up (`make setup`, i.e.
`bash scripts/setup.sh`) is the one place that creates `.venv`; without it: one line, exit 2.
Imported first by every runbook, before any third-party package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
_GUARD = "TP5_IN_VENV"


def inside_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv() -> None:
    """Return when running inside .venv; else exec the same command in it (or exit 2)."""
    if inside_venv():
        return
    if not VENV_PYTHON.exists() or os.environ.get(_GUARD) == "1":
        print(f"error: the project is not set up in {ROOT} (no working .venv): run "
              f"`make setup` (or `bash scripts/setup.sh`) there first", file=sys.stderr)
        raise SystemExit(2)
    os.environ[_GUARD] = "1"
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])


ensure_venv()
