"""Shared fixtures. Lab tests (marked `lab`) run the real daemons in the local lab.

One lab serves the whole test session: it is rebuilt fresh at the start and removed at the
end, also when tests fail. Test sessions (and `lab.py up/down`, the benchmarks) on one
machine queue on one lock file, since the lab's bridge and addresses are fixed. Deselect
with `-m "not lab and not lab_rebuild"` on a machine without root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasks.core.settings import REPO_ROOT, load_settings
from tp5lab import paths
from tp5lab.control import Lab, namespaces_supported


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A fresh local lab built from the repository's inventory, removed at the end."""
    ok, reason = namespaces_supported()
    if not ok:
        pytest.skip(f"local lab unavailable: {reason}")
    with paths.lab_lock():
        the_lab = Lab(load_settings())
        the_lab.down()
        try:
            the_lab.up()
            yield the_lab
        finally:
            the_lab.down()


@dataclass
class DeployRun:
    """One run of runbooks/deploy.py: exit code, output, and its --json summary."""

    returncode: int
    stdout: str
    stderr: str
    summary: dict[str, Any]
    seconds: float

    def status(self, host: str) -> str:
        return str(self.summary["hosts"][host]["status"])


def run_deploy(*args: str, timeout: float = 180) -> DeployRun:
    """Run the deploy runbook as a subprocess with --json; never raises on a failed deploy."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "deploy.json"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "runbooks/deploy.py", "--json", str(out), *args],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - started
        summary = json.loads(out.read_text()) if out.exists() else {}
    return DeployRun(proc.returncode, proc.stdout, proc.stderr, summary, seconds)


def run_lab(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """runbooks/lab.py as a user runs it (this test session already holds the lab lock)."""
    argv = [sys.executable, "runbooks/lab.py", *(["--config", str(config)] if config else []),
            *args]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "TP5_LAB_LOCK_HELD": "1"})


@pytest.fixture(scope="session")
def deploy() -> Callable[..., DeployRun]:
    """`deploy("--group", "rp", ...)`: run runbooks/deploy.py, get a DeployRun."""
    return run_deploy


@pytest.fixture(scope="session")
def deployed(lab: Lab) -> DeployRun:
    """The whole stack deployed once onto the session's fresh lab (fails when it fails)."""
    run = run_deploy()
    if run.returncode != 0:
        pytest.fail(f"deploy failed (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run


@pytest.fixture()
def db_tier_kept(deployed: DeployRun, lab: Lab, request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test, the db tier is healthy again: one writable node (db1, or any node where
    the module sets DB_ANY_PRIMARY = True) and its replica in sync. A failed test's leftovers
    are repaired (printed, tests/db_heal.py) so its failure does not cascade through the later
    tests; a test that passed and left them is an error."""
    yield
    from db_heal import PRIMARY, heal_db_tier

    done = heal_db_tier(lab, None if getattr(request.module, "DB_ANY_PRIMARY", False)
                        else PRIMARY)
    report = getattr(request.node, "rep_call", None)
    if done and report is not None and report.passed:
        pytest.fail(f"the test passed but left the db tier unhealthy; repaired: {done}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Each phase's report on the item (`item.rep_call`), for fixtures that clean up after a
    failed test differently from a passed one."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Pure tests first (quick failures show first), then lab tests, then the ones that
    rebuild the lab (marked `lab_rebuild`: they leave it removed)."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("lab_rebuild"):
            return 2
        return 1 if item.get_closest_marker("lab") else 0

    items.sort(key=rank)


os.environ.setdefault("PYTHONUNBUFFERED", "1")
