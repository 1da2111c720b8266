"""runbooks/trace.py refuses bad options with exit 2 and one message, before any work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks.core.settings import REPO_ROOT


def trace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "runbooks/trace.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    ((), "one of the arguments --requests --follow is required"),
    (("--requests", "6", "--follow"), "not allowed with argument"),
    (("--requests", "0"), "--requests: must be a whole number from 1 to 1000, not '0'"),
    (("--requests", "1001"), "from 1 to 1000"),
    (("--requests", "six"), "not 'six'"),
    (("--requests", "3", "--wait", "nan"), "--wait: must be a number of seconds from 0 to 120"),
    (("--requests", "3", "--wait", "-1"), "--wait: must be a number of seconds"),
    (("--requests", "3", "--json", "/no/such/folder/t.json"), "the folder /no/such/folder of"),
    (("--requests", "3", "--json", "/tmp"), "/tmp is a folder"),
    (("--requests", "3", "--group", "rp"), "--group: only with --follow"),
    (("--requests", "3", "--duration", "5"), "--duration: only with --follow"),
    (("--follow", "--json", "x.json"), "--json: only with --requests"),
    (("--follow", "--wait", "3"), "--wait: only with --requests"),
    (("--follow", "--group", "db"), "invalid choice: 'db'"),
    (("--follow", "--duration", "0"), "from 1 to 3600"),
    (("--follow", "--duration", "inf"), "from 1 to 3600"),
    (("--follow", "--duration", "3601"), "from 1 to 3600"),
])
def test_bad_options_exit_2_with_a_message(args: tuple[str, ...], message: str) -> None:
    proc = trace(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_config_file_exits_2_naming_it(tmp_path) -> None:  # noqa: ANN001
    missing = tmp_path / "nope.yaml"
    proc = trace("--requests", "1", "--config", str(missing))
    assert proc.returncode == 2 and f"{missing}: config file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
