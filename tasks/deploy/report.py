"""What the deploy shows: a line per host as it finishes, the table, the checks, diffs, JSON.

``HostReport`` is the one result shape of the per-host task, whatever the tier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult, Task
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from tasks.core.inventory import tier_of

STYLE = {"changed": "yellow", "unchanged": "green", "failed": "bold red"}


@dataclass
class HostReport:
    """One host's deploy: status, what changed, timings (render, connect, read, wait,
    apply:<service>, start, sql, verify) and the proxies' addresses seen by the check."""

    name: str
    tier: str
    status: str  # changed, unchanged, failed
    error: str = ""
    files: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # database changes (db tier)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    diff: str = ""
    addresses: list[str] = field(default_factory=list)

    @property
    def what(self) -> str:
        """The changes in one line (or the error's first line)."""
        if self.error:
            return self.error.splitlines()[0]
        return ", ".join(self.files + [f"started {d}" for d in self.started] + self.actions)

    def as_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "status": self.status,
                "changed": self.status == "changed", "failed": self.status == "failed",
                "error": self.error or None, "files": self.files, "started": self.started,
                "actions": self.actions, "timings": self.timings,
                "seconds": round(self.seconds, 3)}


class DeployFailed(Exception):
    """A host failed; `report` holds its error and what was done (and measured) until then."""

    def __init__(self, report: HostReport) -> None:
        super().__init__(report.error)
        self.report = report


def report_of(host: Host, multi: MultiResult, seconds: float = 0.0) -> HostReport:
    """The HostReport of a host's deploy_host result, failed ones included."""
    first = multi[0]
    if not multi.failed and isinstance(first.result, HostReport):
        return first.result
    exc = first.exception
    if isinstance(exc, DeployFailed):
        return exc.report
    error = str(exc) if exc is not None else str(first.result)
    return HostReport(host.name, tier_of(host), "failed", error=error, seconds=seconds)


class Progress:
    """Nornir processor printing one line per host as soon as its deploy finishes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def task_started(self, task: Task) -> None:
        self.started = time.monotonic()

    def task_completed(self, task: Task, result: AggregatedResult) -> None:
        return None

    def task_instance_started(self, task: Task, host: Host) -> None:
        return None

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        elapsed = time.monotonic() - self.started
        report = report_of(host, result, elapsed)
        self.console.print(f"[dim]{elapsed:5.2f}s[/] {host.name:<8} "
                           f"[{STYLE[report.status]}]{report.status}[/] {escape(report.what)}")

    def subtask_instance_started(self, task: Task, host: Host) -> None:
        return None

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        return None


def print_table(console: Console, reports: list[HostReport], title: str) -> None:
    table = Table(title=title)
    for col in ("host", "tier", "status", "what / reason", "time"):
        table.add_column(col, justify="right" if col == "time" else "left")
    for r in reports:
        what = r.error or r.what or "-"
        table.add_row(r.name, r.tier, f"[{STYLE[r.status]}]{r.status}[/]", escape(what),
                      f"{r.seconds:.2f}s")
    console.print(table)


def print_diffs(console: Console, reports: list[HostReport]) -> None:
    for r in reports:
        if r.diff:
            console.rule(f"{r.name}: diff")
            console.print(Syntax(r.diff, "diff", theme="ansi_dark", word_wrap=True))


def print_check(console: Console, ok: bool, line: str) -> None:
    """One end-to-end check's line: ok or FAILED, then what was seen."""
    console.print(f"{'[green]ok[/]' if ok else '[red]FAILED[/]'} {escape(line)}")


def summary(reports: list[HostReport], extra: dict[str, Any]) -> dict[str, Any]:
    """The --json document: per host changed/failed/error/timings, plus the checks."""
    return {"hosts": {r.name: r.as_json() for r in reports},
            "failed": sorted(r.name for r in reports if r.status == "failed"), **extra}
