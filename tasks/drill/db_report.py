"""The db drill's report: lines for the terminal (pure)."""

from __future__ import annotations

from tasks.drill.db_faults import DbFault
from tasks.drill.db_record import DbDrillRun, DbExperiment

ANCHORS = ("anchors' defaults: MaxScale about 10 s (up to 25 s), orchestrator 10-13 s, "
           "MHA 10-30 s; none promises that no acknowledged write is lost")


def header_lines(fault: DbFault, repeat: int, writers: int, web: str) -> list[str]:
    return [f"db drill: {fault.name} x{repeat}: {fault.story}",
            f"workload: {writers} writers with the app's account and discovery rule, from "
            f"{web}'s network namespace, plus requests to the app through the VIP"]


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def experiment_lines(exp: DbExperiment) -> list[str]:
    """What one run saw; the last line is the verdict."""
    lines = [f"replica {exp.target} faulted, primary {exp.successor}" if exp.fault ==
             "replica-crash" else f"primary {exp.target}, successor {exp.successor}"]
    h = exp.history
    if h is not None:
        c = h.counts
        lines.append(f"writes: {c['ok']} ok, {c['fail']} fail, {c['info']} info")
        lines.append(f"lost {len(h.lost)}  phantom {len(h.phantom)}  info-committed "
                     f"{len(h.info_committed)}  split-brain {len(h.split_brain)}  "
                     f"only on the old primary {len(h.old_primary_only)}")
        out = h.outage
        if out is not None:
            lines.append(f"write outage {_s(out.seconds)}: detection {_s(out.detection_s)}, "
                         f"confirmation {_s(out.confirmation_s)}, promotion "
                         f"{_s(out.promotion_s)}, replica wait {_s(out.replica_wait_s)}, "
                         f"discovery {_s(out.discovery_s)}")
    if exp.divergence.get("nodes"):
        nodes = exp.divergence["nodes"]
        lines.append("after the rejoin: " + "; ".join(
            f"{n} gtid {v['gtid_current_pos']} checksum {v['checksum']}"
            for n, v in nodes.items()) + (" DIVERGED" if exp.divergence["diverged"]
                                          else " (same)"))
    lines.append(f"writable after the fault: {exp.writable_after_fault}; at the end: "
                 f"{exp.writable_at_end}")
    failed = sum(not r.ok for r in exp.requests)
    lines.append(f"app through the VIP: {len(exp.requests)} requests, {failed} failed")
    if exp.png:
        lines.append(f"timeline: {exp.png}")
    lines += [f"PROBLEM: {p}" for p in exp.problems]
    lines.append("PASS" if exp.ok else "FAIL")
    return lines


def repeat_lines(run: DbDrillRun) -> list[str]:
    t = run.totals()
    spread = t["write_outage_s"]
    outage = "-" if spread is None else (
        f"min {spread['min']:.2f} / median {spread['median']:.2f} / p95 {spread['p95']:.2f} / "
        f"max {spread['max']:.2f} s over {spread['n']} runs")
    return [f"{run.fault}: {t['runs']} run(s): lost {t['lost']}, phantom {t['phantom']}, "
            f"split-brain {t['split_brain']}, info-committed {t['info_committed']}",
            f"write outage: {outage}", ANCHORS]
