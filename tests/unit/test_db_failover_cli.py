"""The failover and status runbooks refuse bad arguments with exit 2 and a message, no lab
needed, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks.core.settings import REPO_ROOT


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("argv, message", [
    (("switchover", "--to", "web1"), "web1 is not a db host of the inventory"),
    (("rejoin", "nope"), "nope is not a db host of the inventory"),
    (("rebuild", "web2"), "web2 is not a db host of the inventory"),
    (("rebuild",), "the following arguments are required: node"),
    (("failover", "--to", "rp1"), "rp1 is not a db host"),
    (("switchover",), "the following arguments are required: --to"),
    (("explode",), "invalid choice"),
    (("watch", "--duration", "0"), "--duration: must be a number of seconds from 1"),
    (("watch", "--max-failovers", "0"), "--max-failovers: must be a whole number from 1"),
    (("watch", "--silence", "1"), "--silence: must be a number of seconds from 1.5"),
    (("watch", "--interval", "nan"), "--interval: must be a number of seconds"),
])
def test_failover_runbook_bad_arguments(argv: tuple[str, ...], message: str) -> None:
    done = run("runbooks/db_failover.py", *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_db_status_refuses_a_host_outside_the_db_tier() -> None:
    done = run("runbooks/db_status.py", "--host", "web1")
    assert done.returncode == 2 and "web1 not a db host" in done.stderr
    assert "healthy" not in done.stdout and "Traceback" not in done.stderr
