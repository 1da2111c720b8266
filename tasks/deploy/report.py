"""What the deploy runbook shows: a line per host as it finishes, the table, diffs, JSON."""

from __future__ import annotations

import time
from typing import Any

from nornir.core.inventory import Host
from nornir.core.task import AggregatedResult, MultiResult, Task
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from tasks.core.inventory import tier_of
from tasks.deploy.host import DeployFailed, HostReport

STYLE = {"changed": "yellow", "unchanged": "green", "failed": "bold red"}


def report_of(host: Host, multi: MultiResult, seconds: float = 0.0) -> HostReport:
    """The HostReport of a host's deploy_node result, failed ones included."""
    first = multi[0]
    if not multi.failed and isinstance(first.result, HostReport):
        return first.result
    exc = first.exception
    timings = exc.timings if isinstance(exc, DeployFailed) else {}
    error = str(exc) if exc is not None else str(first.result)
    return HostReport(host.name, tier_of(host), "failed", error=error, timings=timings,
                      seconds=seconds)


class Progress:
    """Nornir processor printing one line per host as soon as it finishes."""

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
        detail = ", ".join(report.files + [f"started {d}" for d in report.started])
        if report.error:
            detail = report.error.splitlines()[0]
        self.console.print(f"[dim]{elapsed:5.2f}s[/] {host.name:<8} "
                           f"[{STYLE[report.status]}]{report.status}[/] {escape(detail)}")

    def subtask_instance_started(self, task: Task, host: Host) -> None:
        return None

    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        return None


def print_table(console: Console, reports: list[HostReport], title: str) -> None:
    table = Table(title=title)
    for col in ("host", "tier", "status", "what / reason", "time"):
        table.add_column(col, justify="right" if col == "time" else "left")
    for r in reports:
        what = r.error or ", ".join(r.files + [f"started {d}" for d in r.started]) or "-"
        table.add_row(r.name, r.tier, f"[{STYLE[r.status]}]{r.status}[/]", escape(what),
                      f"{r.seconds:.2f}s")
    console.print(table)


def print_diffs(console: Console, reports: list[HostReport]) -> None:
    for r in reports:
        if r.diff:
            console.rule(f"{r.name}: diff")
            console.print(Syntax(r.diff, "diff", theme="ansi_dark", word_wrap=True))


def summary(reports: list[HostReport], extra: dict[str, Any]) -> dict[str, Any]:
    """The --json document: per host changed/failed/error/timings, plus the checks."""
    return {"hosts": {r.name: r.as_json() for r in reports},
            "failed": sorted(r.name for r in reports if r.status == "failed"), **extra}
