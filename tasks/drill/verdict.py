"""The drill's verdict, pure: analyse what an experiment recorded, list what did not hold.

Expectations after a fault on the target: the probes succeed again, only the backup holds
the VIP, and (with a capture) the capture shows the takeover target -> backup and no split
brain. Nothing here touches the network.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from tasks.core.probe import ProbeRecord
from tasks.drill.probe_analysis import analyze_probes
from tasks.drill.record import Experiment
from tasks.drill.vrrp_analysis import CaptureAnalysis, analyze_capture


def conclude(exp: Experiment, vip: str, names: Mapping[str, str], captured: bool) -> None:
    """Add the probe (and capture) analyses to an injected experiment, then its problems."""
    exp.probes = analyze_probes(exp.records, exp.fault_time)
    if captured:
        exp.capture = analyze_capture(exp.packets, vip, exp.fault_time)
    exp.failed_after_restore = failures_after(exp.records, exp.restore_time)
    exp.problems += expectation_problems(exp, names)


def expectation_problems(exp: Experiment, names: Mapping[str, str]) -> list[str]:
    """What the analyses of `exp` show against its expectations (empty: all held)."""
    problems = []
    if exp.probes is not None and not exp.probes.recovered:
        problems.append("the probes never succeeded again after the fault")
    if exp.holders_after_fault != [exp.backup]:
        problems.append(f"after the fault the VIP was on {exp.holders_after_fault}, "
                        f"expected only {exp.backup}")
    if exp.capture is not None:
        problems += capture_problems(exp.capture, exp.target, exp.backup, names)
    return problems


def capture_problems(capture: CaptureAnalysis, target: str, backup: str,
                     names: Mapping[str, str]) -> list[str]:
    """The capture must show one takeover target -> backup and no split brain."""
    problems = []
    fo = capture.failover
    if fo is None:
        problems.append("the capture shows no takeover after the fault")
    elif (names.get(fo.old_master), names.get(fo.new_master)) != (target, backup):
        problems.append(f"the capture shows a takeover {fo.old_master} -> {fo.new_master}, "
                        f"expected {target} -> {backup}")
    if capture.split_brains:
        problems.append(f"split brain: {len(capture.split_brains)} interval(s) with two "
                        "masters advertising")
    return problems


def failures_after(records: Iterable[ProbeRecord], since: float | None) -> dict[str, int]:
    """Failed probes sent at or after `since` (the restore), counted by error."""
    if since is None:
        return {}
    return dict(Counter(r.error or "?" for r in records if r.time >= since and not r.ok))
