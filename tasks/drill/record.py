"""What a drill saw and concluded: one `Experiment` per run, a `DrillRun` for them all.

Plain data with `to_dict()` for the JSON report; the steps fill an Experiment in, the pure
verdict (tasks.drill.verdict) adds its analyses and problems.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from tasks.core.probe import ProbeRecord
from tasks.drill.probe_analysis import ProbeAnalysis
from tasks.drill.vrrp_analysis import CaptureAnalysis


@dataclass
class Experiment:
    """One fault injected on `target`, with `backup` expected to take the VIP over."""

    fault: str
    target: str
    backup: str
    fault_time: float = 0.0  # epoch seconds; 0: nothing was injected
    restore_time: float | None = None
    backup_holds_vip_after_s: float | None = None
    holders_after_fault: list[str] = field(default_factory=list)
    holders_after_restore: list[str] = field(default_factory=list)
    preempted_back_after_s: float | None = None
    steady_after_restore_s: float | None = None
    failed_after_restore: dict[str, int] = field(default_factory=dict)
    capture: CaptureAnalysis | None = None
    probes: ProbeAnalysis | None = None
    packets: list[Any] = field(default_factory=list)
    records: list[ProbeRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    left_faulted: str | None = None  # injected and not (yet) restored
    interrupted: bool = False  # Ctrl-C
    pcap: Path | None = None
    png: Path | None = None

    @property
    def injected(self) -> bool:
        return self.fault_time > 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault, "target": self.target, "backup": self.backup,
            "ok": self.ok, "problems": self.problems, "fault_time": self.fault_time,
            "restore_time": self.restore_time,
            "backup_holds_vip_after_s": self.backup_holds_vip_after_s,
            "holders_after_fault": self.holders_after_fault,
            "holders_after_restore": self.holders_after_restore,
            "preempted_back_after_s": self.preempted_back_after_s,
            "steady_after_restore_s": self.steady_after_restore_s,
            "failed_after_restore": self.failed_after_restore,
            "left_faulted": self.left_faulted, "interrupted": self.interrupted,
            "pcap": str(self.pcap) if self.pcap else None,
            "png": str(self.png) if self.png else None,
            "capture": self.capture.to_dict() if self.capture else None,
            "probes": self.probes.to_dict() if self.probes else None,
        }


class Outcome(Protocol):
    """What a run of any drill says about itself."""

    ok: bool
    interrupted: bool
    left_faulted: str | None


E = TypeVar("E", bound=Outcome)


@dataclass
class Runs(Generic[E]):
    """The experiments of one drill, in order (it stops at the first that fails)."""

    fault: str
    repeat: int
    experiments: list[E] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.experiments) and all(e.ok for e in self.experiments)

    @property
    def interrupted(self) -> bool:
        return any(e.interrupted for e in self.experiments)

    @property
    def left_faulted(self) -> str | None:
        """A node whose restore did not complete, if any."""
        return next((e.left_faulted for e in self.experiments if e.left_faulted), None)


R = TypeVar("R", bound=Runs[Any])


def repeat_experiments(run: R, one: Callable[[int], Any],
                       on_experiment: Callable[[int, Any], None],
                       close: Callable[[], None]) -> R:
    """The drills' loop: `one(number)` for each of the run's `repeat` experiments, stopping at
    the first that fails or is interrupted; `on_experiment(number, exp)` after each; `close()`
    at the end, whatever happened."""
    try:
        for number in range(1, run.repeat + 1):
            exp = one(number)
            run.experiments.append(exp)
            on_experiment(number, exp)
            if not exp.ok:
                break
    finally:
        close()
    return run


@dataclass
class DrillRun(Runs[Experiment]):
    """The proxy drill's experiments, with the takeovers and outages measured over them."""

    def takeovers(self) -> list[float]:
        return [e.capture.failover.takeover_s for e in self.experiments
                if e.capture and e.capture.failover]

    def outages(self) -> list[float]:
        return [e.probes.outage_s for e in self.experiments
                if e.probes and e.probes.outage_s is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"fault": self.fault, "runs": len(self.experiments),
                "takeover_s": spread(self.takeovers()), "outage_s": spread(self.outages()),
                "experiments": [e.to_dict() for e in self.experiments]}


def spread(values: list[float]) -> dict[str, float] | None:
    """min / median / max of measured values (None if there are none)."""
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}
