"""Remote commands over the netmiko SSH session: exit codes, stdin, and large outputs whole."""

from __future__ import annotations

import pytest
from nornir.core.task import Result, Task

from tasks.core.nornir_build import build_nornir
from tasks.core.remote import run_command
from tp5lab.control import Lab

pytestmark = pytest.mark.lab


def _run(task: Task, command: str, stdin: str | None = None) -> Result:
    return Result(host=task.host, result=run_command(task, command, stdin=stdin))


def test_a_large_output_arrives_whole_every_time(lab: Lab) -> None:
    """sshd may send the exit status before the end of a large output: the reader waits for
    the end of the output, not only for the status (a drill once read a truncated log)."""
    nr = build_nornir(hosts=["web1", "rp1"])
    size = 3_000_000
    command = f"head -c {size} /dev/zero | tr '\\0' x; exit 3"
    try:
        for _ in range(8):
            results = nr.run(task=_run, command=command)
            for name, multi in results.items():
                assert not multi.failed, multi[0].exception
                out = multi[0].result
                assert (out.rc, len(out.stdout), set(out.stdout)) == (3, size, {"x"}), name
    finally:
        nr.close_connections()


def test_stdin_reaches_the_command_and_stderr_is_kept(lab: Lab) -> None:
    nr = build_nornir(hosts=["web2"])
    try:
        out = nr.run(task=_run, command="wc -c; echo oops >&2", stdin="a" * 100_000)["web2"]
        assert out[0].result.stdout.strip() == "100000"
        assert out[0].result.stderr.strip() == "oops" and out[0].result.rc == 0
    finally:
        nr.close_connections()
