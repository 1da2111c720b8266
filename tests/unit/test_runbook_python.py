"""`python runbooks/X.py` works as typed: with another Python, a runbook continues inside .venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.core.settings import REPO_ROOT
from tp5lab.inventory_factory import write_inventory

RUNBOOKS = sorted(p.name for p in (REPO_ROOT / "runbooks").glob("*.py") if p.name != "_venv.py")
# The interpreter the project's .venv was made from: the user's `python`, without the packages.
SYSTEM_PYTHON = getattr(sys, "_base_executable", None) or sys.executable


def run(argv: list[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEM_PYTHON, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_each_runbook_answers_help_through_the_system_python(runbook: str) -> None:
    proc = run([f"runbooks/{runbook}", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "Traceback" not in proc.stderr


def test_a_real_command_keeps_its_arguments_and_exit_code(tmp_path: Path) -> None:
    """deploy.py --config C with the lab bridge missing: exit 3 and the refusal, as in .venv."""
    config = write_inventory(tmp_path, 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["lab"]["bridge"] = "tp5nobridge"
    config.write_text(yaml.safe_dump(raw))
    proc = run(["runbooks/deploy.py", "--config", str(config)])
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "the lab bridge tp5nobridge is not up" in proc.stderr


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_without_the_set_up_a_runbook_says_what_to_run(tmp_path: Path, runbook: str) -> None:
    fresh = tmp_path / "clone"
    (fresh / "runbooks").mkdir(parents=True)
    for name in ("_venv.py", runbook):
        shutil.copy(REPO_ROOT / "runbooks" / name, fresh / "runbooks" / name)
    proc = run([f"runbooks/{runbook}", "--help"], cwd=fresh)
    assert proc.returncode == 2
    assert "make setup" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
