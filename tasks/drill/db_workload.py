"""The db drill's workload, from the controller: the writers (tasks.drill.db_writers) in a
web node's network namespace, and requests to the app through the VIP.

``Workload`` starts the writers' process (the app's password goes on its stdin, never on a
command line), and ``finish`` closes its stdin and reads back every operation. The
requests through the VIP are the probes of the other drills (tasks.core.probe).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tasks.core.probe import ProbeLoop, ProbeRecord
from tasks.core.settings import REPO_ROOT
from tasks.drill.db_context import DbDrillContext
from tasks.drill.db_history import Op

START_TIMEOUT = 20.0
FINISH_TIMEOUT = 30.0
VIP_INTERVAL = 0.1
VIP_TIMEOUT = 3.0


class WorkloadError(Exception):
    """The writers could not start or did not report."""


@dataclass
class Workload:
    """The writers' process and the VIP probes of one experiment."""

    ctx: DbDrillContext
    run: str
    proc: subprocess.Popen[str] | None = None
    probes: ProbeLoop | None = None
    ops: list[Op] = field(default_factory=list)
    requests: list[ProbeRecord] = field(default_factory=list)

    def start(self) -> None:
        argv = self.ctx.lab.netns_argv(self.ctx.web, [
            sys.executable, "-m", "tasks.drill.db_writers"])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        config = {"nodes": [list(n) for n in self.ctx.nodes], "user": self.ctx.database,
                  "password": self.ctx.tier.target.secrets.app, "database": self.ctx.database,
                  "run": self.run, "writers": self.ctx.writers, "client": self.ctx.web_address}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(config) + "\n")
        self.proc.stdin.flush()
        first = _read_line(self.proc, START_TIMEOUT)
        if "started" not in first:
            why = first.get("error") or first
            why = f"{why} {self.kill()}"
            raise WorkloadError(f"the writers in {self.ctx.web}'s network namespace did not "
                                f"start: {why}")
        if self.ctx.vip:
            self.probes = ProbeLoop(self.ctx.vip, VIP_INTERVAL, VIP_TIMEOUT)
            self.probes.start()

    def finish(self) -> list[Op]:
        """Stop the writers and the probes; every operation, in start order."""
        if self.probes is not None:
            self.requests = self.probes.stop()
            self.probes = None
        if self.proc is None:
            return self.ops
        try:
            out, err = self.proc.communicate("", timeout=FINISH_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise WorkloadError("the writers did not stop within "
                                f"{FINISH_TIMEOUT:.0f} s") from None
        self.proc = None
        last = out.strip().splitlines()[-1] if out.strip() else "{}"
        data: dict[str, Any] = json.loads(last)
        if "ops" not in data:
            raise WorkloadError(f"the writers reported nothing: {err.strip()[-300:]}")
        self.ops = sorted((Op.from_dict(o) for o in data["ops"]), key=lambda o: o.start)
        return self.ops

    def kill(self) -> str:
        """Kill the writers' process; what it said on stderr."""
        err = ""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            err = self.proc.communicate(timeout=10)[1] or ""
        self.proc = None
        return err.strip()[-300:]


def _read_line(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The process's first JSON line on stdout, within `timeout` (else {})."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = proc.stdout.readline()
                try:
                    return json.loads(line) if line else {"error": "exited"}
                except json.JSONDecodeError:
                    return {"error": line.strip()}
    return {}
