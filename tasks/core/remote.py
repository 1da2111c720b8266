"""Run commands on a host over its netmiko SSH connection, with exit codes.

netmiko's `send_command` reads a prompt and gives no exit status; deploy steps need both
the status and exact bytes. So commands run on their own exec channel of the SSH transport
that the host's netmiko connection (tasks/connection.py) holds: one connection per host,
reused.
"""

from __future__ import annotations

import select
import shlex
import time
from dataclasses import dataclass

from nornir.core.task import Task

from tasks.core.connection import CONNECTION

DEFAULT_TIMEOUT = 30.0


class RemoteCommandError(Exception):
    """A command exited non-zero (or timed out) on a host."""

    def __init__(self, host: str, command: str, result: CommandResult | None, reason: str):
        self.host, self.command, self.result = host, command, result
        super().__init__(f"{host}: `{command}` {reason}")


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def as_root(username: str | None, command: str) -> str:
    """The command line that runs `command` as root when logged in as `username`."""
    if (username or "root") == "root":
        return command
    return f"sudo -n sh -c {shlex.quote(command)}"


def _as_root(task: Task, command: str) -> str:
    return as_root(task.host.username, command)


def run_command(
    task: Task, command: str, stdin: str | bytes | None = None, timeout: float = DEFAULT_TIMEOUT
) -> CommandResult:
    """Run `command` through `sh` on the task's host and return its exit code and output."""
    conn = task.host.get_connection(CONNECTION, task.nornir.config)
    transport = conn.remote_conn.get_transport()
    chan = transport.open_session(timeout=timeout)
    try:
        chan.exec_command(_as_root(task, command))
        if stdin is not None:
            chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
        chan.shutdown_write()
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            # Done once the output has ended (EOF) and the exit status came: sshd may send the
            # status before the last of a large output, so the status alone is not the end.
            if chan.eof_received and chan.exit_status_ready() and not chan.recv_ready() \
                    and not chan.recv_stderr_ready():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteCommandError(task.host.name, command, None,
                                         f"timed out after {timeout:.0f} s")
            select.select([chan], [], [], min(remaining, 0.2))
        rc = chan.recv_exit_status()
    finally:
        chan.close()
    return CommandResult(rc, out.decode(errors="replace"), err.decode(errors="replace"))


def check_command(
    task: Task, command: str, stdin: str | bytes | None = None, timeout: float = DEFAULT_TIMEOUT
) -> CommandResult:
    """Like run_command, but raise RemoteCommandError naming host and output on failure."""
    result = run_command(task, command, stdin=stdin, timeout=timeout)
    if not result.ok:
        detail = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise RemoteCommandError(task.host.name, command, result,
                                 f"exited {result.rc}: {detail}")
    return result
