"""Stream one host's command output into another host's command, through the controller.

``source | (controller) | sink`` over the two hosts' SSH connections (the netmiko transports
of tasks/core/connection.py, one exec channel each, as tasks/core/remote.py runs commands):
the bytes are relayed in chunks, never held whole, and the hosts need no access to each
other. Both exit codes and the end of both error outputs are returned.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass

import paramiko
from nornir.core import Nornir

from tasks.core.connection import CONNECTION
from tasks.core.remote import as_root

CHUNK = 256 * 1024
TAIL = 4000  # bytes of each error output kept


@dataclass(frozen=True)
class PipeResult:
    bytes: int
    source_rc: int
    source_err: str
    sink_rc: int
    sink_err: str

    @property
    def ok(self) -> bool:
        return self.source_rc == 0 and self.sink_rc == 0


class PipeError(Exception):
    """The stream could not run to its end (timeout); the message names both ends."""


class _Tail:
    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        del self.data[:-TAIL]

    def text(self) -> str:
        return self.data.decode(errors="replace")


def _open(nr: Nornir, name: str, command: str, timeout: float) -> paramiko.Channel:
    host = nr.inventory.hosts[name]
    conn = host.get_connection(CONNECTION, nr.config)
    chan = conn.remote_conn.get_transport().open_session(timeout=timeout)
    chan.exec_command(as_root(host.username, command))
    return chan


def _drain_err(chan: paramiko.Channel, tail: _Tail) -> None:
    while chan.recv_stderr_ready():
        tail.add(chan.recv_stderr(CHUNK))


def _relay(src: paramiko.Channel, dst: paramiko.Channel, tails: tuple[_Tail, _Tail],
           deadline: float) -> int:
    """Copy src's stdout into dst's stdin until src's end; the byte count."""
    count = 0
    while True:
        if src.recv_ready():
            chunk = src.recv(CHUNK)
            dst.sendall(chunk)
            count += len(chunk)
            continue
        _drain_err(src, tails[0])
        _drain_err(dst, tails[1])
        while dst.recv_ready():  # the sink's stdout is not wanted, only drained
            dst.recv(CHUNK)
        if src.eof_received and not src.recv_ready():
            return count
        if dst.exit_status_ready():  # the sink gave up: stop feeding it
            return count
        if time.monotonic() > deadline:
            raise PipeError("timed out")
        select.select([src], [], [], 0.2)


def _finish(chan: paramiko.Channel, tail: _Tail, deadline: float) -> int:
    while not chan.exit_status_ready():
        _drain_err(chan, tail)
        while chan.recv_ready():
            chan.recv(CHUNK)
        if time.monotonic() > deadline:
            raise PipeError("timed out waiting for the command to end")
        select.select([chan], [], [], 0.2)
    _drain_err(chan, tail)
    return chan.recv_exit_status()


def pipe(nr: Nornir, source: str, source_cmd: str, sink: str, sink_cmd: str,
         timeout: float) -> PipeResult:
    """Run `source_cmd` on host `source` (as root) and feed its output to `sink_cmd` on
    host `sink`; both must end within `timeout` s (PipeError names them otherwise)."""
    deadline = time.monotonic() + timeout
    tails = (_Tail(), _Tail())
    dst = _open(nr, sink, sink_cmd, timeout)
    try:
        src = _open(nr, source, source_cmd, timeout)
        try:
            src.shutdown_write()
            try:
                count = _relay(src, dst, tails, deadline)
                dst.shutdown_write()
                sink_rc = _finish(dst, tails[1], deadline)
                source_rc = _finish(src, tails[0], deadline) if src.eof_received else -1
            except PipeError as exc:
                raise PipeError(f"{source} `{source_cmd}` | {sink} `{sink_cmd}`: {exc} "
                                f"after {timeout:.0f} s") from exc
        finally:
            src.close()
    finally:
        dst.close()
    return PipeResult(count, source_rc, tails[0].text(), sink_rc, tails[1].text())
