"""What a db drill saw and concluded: one `DbExperiment` per run, a `DbDrillRun` for all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.probe import ProbeRecord
from tasks.drill.db_history import History, Marks, Op, spread
from tasks.drill.record import Runs


@dataclass
class DbExperiment:
    """One fault on the primary `target`, with `successor` expected to take over."""

    fault: str
    target: str = ""
    successor: str = ""
    marks: Marks = field(default_factory=Marks)
    watcher: list[dict[str, Any]] = field(default_factory=list)  # its events
    writable_after_fault: list[str] = field(default_factory=list)
    writable_at_end: list[str] = field(default_factory=list)
    divergence: dict[str, Any] = field(default_factory=dict)
    history: History | None = None
    ops: list[Op] = field(default_factory=list)
    requests: list[ProbeRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    left_faulted: str | None = None
    interrupted: bool = False
    png: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def outage_s(self) -> float | None:
        out = self.history.outage if self.history else None
        return out.seconds if out else None

    def to_dict(self) -> dict[str, Any]:
        h = self.history.to_dict() if self.history else {}
        failed = sum(not r.ok for r in self.requests)
        return {
            "fault": self.fault, "target": self.target, "successor": self.successor,
            "ok": self.ok, "problems": self.problems,
            "lost": h.get("lost"), "phantom": h.get("phantom"),
            "info_committed": h.get("info_committed"), "split_brain": h.get("split_brain"),
            "old_primary_only": h.get("old_primary_only"), "divergence": self.divergence,
            "write_outage": h.get("write_outage"), "counts": h.get("counts"),
            "writable_after_fault": self.writable_after_fault,
            "writable_at_end": self.writable_at_end, "marks": self.marks.__dict__,
            "watcher": self.watcher, "app_requests": {"sent": len(self.requests),
                                                      "failed": failed},
            "left_faulted": self.left_faulted, "interrupted": self.interrupted,
            "png": str(self.png) if self.png else None,
            "history": h, "ops": [o.to_dict() for o in self.ops],
        }


@dataclass
class DbDrillRun(Runs[DbExperiment]):
    """The db drill's experiments, with the totals over them."""

    def totals(self) -> dict[str, Any]:
        hs = [e.history for e in self.experiments if e.history]
        outages = [e.outage_s for e in self.experiments if e.outage_s is not None]
        return {"runs": len(self.experiments),
                "lost": sum(len(h.lost) for h in hs), "phantom": sum(len(h.phantom) for h in hs),
                "split_brain": sum(len(h.split_brain) for h in hs),
                "info_committed": sum(len(h.info_committed) for h in hs),
                "write_outage_s": spread(outages)}

    def to_dict(self) -> dict[str, Any]:
        return {"group": "db", "fault": self.fault, **self.totals(),
                "experiments": [e.to_dict() for e in self.experiments]}
