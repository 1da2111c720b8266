"""What a web drill saw and concluded: one `WebExperiment` per run, a `WebDrillRun` for all.

Plain data with `to_dict()` for the JSON report; the web steps fill an experiment in, the
pure verdict (tasks.drill.web_verdict) adds its analyses and problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.probe import ProbeRecord
from tasks.drill.nginx_log import AccessLine
from tasks.drill.nginx_site import NginxTimeouts
from tasks.drill.record import Runs
from tasks.drill.sessions import SessionAnswer, SessionStats
from tasks.drill.web_analysis import NginxView, PhaseStats


@dataclass
class WebExperiment:
    """One fault injected on the web server `target`."""

    fault: str
    target: str
    nginx: NginxTimeouts
    probe_timeout_s: float
    fault_time: float = 0.0  # epoch seconds; 0: nothing was injected
    restore_time: float | None = None  # the restore began
    restored_time: float | None = None  # the restore completed (the node serves again)
    back_in_rotation_s: float | None = None  # restored -> first probe the target answered
    steady_after_restore_s: float | None = None
    phases: dict[str, PhaseStats] = field(default_factory=dict)
    view: NginxView | None = None
    records: list[ProbeRecord] = field(default_factory=list)
    session_store: str = "db"  # where the web servers keep sessions (the expectation's basis)
    session_answers: list[SessionAnswer] = field(default_factory=list)  # cookie-jar clients
    sessions: SessionStats | None = None
    log_lines: list[AccessLine] = field(default_factory=list)
    log_unparsed: int = 0
    problems: list[str] = field(default_factory=list)
    left_faulted: str | None = None
    interrupted: bool = False
    png: Path | None = None

    @property
    def injected(self) -> bool:
        return self.fault_time > 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault, "target": self.target, "ok": self.ok,
            "problems": self.problems, "fault_time": self.fault_time,
            "restore_time": self.restore_time, "restored_time": self.restored_time,
            "nginx_settings": self.nginx.to_dict(), "probe_timeout_s": self.probe_timeout_s,
            "back_in_rotation_s": self.back_in_rotation_s,
            "steady_after_restore_s": self.steady_after_restore_s,
            "phases": {name: p.to_dict() for name, p in self.phases.items()},
            "nginx": self.view.to_dict() if self.view else None,
            "left_faulted": self.left_faulted, "interrupted": self.interrupted,
            "png": str(self.png) if self.png else None,
            "records": [r.to_dict() for r in self.records],
            "session_store": self.session_store,
            "sessions": self.sessions.to_dict() if self.sessions else None,
            "session_answers": [a.to_dict() for a in self.session_answers],
        }


@dataclass
class WebDrillRun(Runs[WebExperiment]):
    """The web drill's experiments, in order (it stops at the first that fails)."""

    def to_dict(self) -> dict[str, Any]:
        return {"group": "web", "fault": self.fault, "runs": len(self.experiments),
                "experiments": [e.to_dict() for e in self.experiments]}
