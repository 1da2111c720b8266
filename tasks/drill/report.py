"""Plain-text summary of a failover drill: measured takeover against theory, client outage.

Entry points::

    format_summary(capture, probes=None, names=None) -> list[str]
    experiment_lines(exp, names) -> list[str]   # one run of the drill, ending with its verdict
    repeat_lines(run) -> list[str]               # min/median/max over the runs
    interruption_line(run) -> str                # after Ctrl-C: what may be left faulted
    header_lines(ctx, fault, repeat) -> list[str] # what the drill is about to do

``capture`` comes from :func:`tasks.vrrp_analysis.analyze_capture`, ``probes`` from
:func:`tasks.probe_analysis.analyze_probes`; ``names`` maps addresses to host names
(``{"10.5.1.111": "rp1"}``). Times are shown relative to t0: the fault, else the capture start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tasks.drill.probe_analysis import ProbeAnalysis
from tasks.drill.record import DrillRun, Experiment, spread
from tasks.drill.vrrp_analysis import CaptureAnalysis

if TYPE_CHECKING:
    from tasks.drill.context import DrillContext
    from tasks.drill.faults import Fault


def reference_time(capture: CaptureAnalysis, probes: ProbeAnalysis | None = None) -> float:
    """Return t0: the fault time, else the first packet or probe."""
    if capture.fault_time is not None:
        return capture.fault_time
    if probes is not None and probes.fault_time is not None:
        return probes.fault_time
    starts = [capture.start_time] + ([probes.records[0].time] if probes and probes.records else [])
    known = [t for t in starts if t is not None]
    return min(known) if known else 0.0


def label(ip: str, names: Mapping[str, str] | None) -> str:
    """Return ``name (ip)`` when the name is known, else the address."""
    name = (names or {}).get(ip)
    return f"{name} ({ip})" if name else ip


def format_summary(
    capture: CaptureAnalysis,
    probes: ProbeAnalysis | None = None,
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """Return the summary as lines of plain text."""
    t0 = reference_time(capture, probes)
    lines = _capture_lines(capture, t0, names) + _failover_lines(capture, t0, names)
    if probes is not None:
        lines += _probe_lines(probes, t0)
    return lines


def _rel(t: float | None, t0: float) -> str:
    return "-" if t is None else f"t{t - t0:+.3f}s"


def _span(start: float | None, end: float | None, t0: float) -> str:
    return f"{_rel(start, t0)}..{_rel(end, t0)}"


def _capture_lines(c: CaptureAnalysis, t0: float, names: Mapping[str, str] | None) -> list[str]:
    span = 0.0 if c.start_time is None or c.end_time is None else c.end_time - c.start_time
    lines = [
        f"VRRP capture: {len(c.adverts)} adverts from {len(c.routers)} routers, "
        f"{c.packet_count} packets over {span:.1f} s; VIP {c.vip}, vrid {c.vrid}; "
        f"t0 = {'fault' if c.fault_time is not None else 'first packet'}",
    ]
    for r in c.routers:
        gap = "-" if r.median_gap_s is None else f"{r.median_gap_s:.3f} s"
        prios = ",".join(str(p) for p in r.priorities)
        lines.append(
            f"  {label(r.src_ip, names):<22} vrid {r.vrid} v{r.version} int {r.advert_int:g} s  "
            f"prio {prios:<7} {r.count:>4} adverts {_span(r.first_time, r.last_time, t0)}"
            f"  median gap {gap}"
        )
    for a in c.resignations:
        who = label(a.src_ip, names)
        lines.append(f"  priority-0 advert (resignation) from {who} at {_rel(a.time, t0)}")
    lines.append(
        f"Gratuitous ARPs for {c.vip}: {len(c.garps)}"
        + ("" if not c.garps else f", first {_rel(c.garps[0].time, t0)} from "
           f"{label(c.garps[0].router, names) if c.garps[0].router else c.garps[0].sender_mac}")
    )
    if not c.split_brains:
        lines.append("Split brain: none")
    for sb in c.split_brains:
        who = " and ".join(label(ip, names) for ip in sb.routers)
        lines.append(
            f"SPLIT BRAIN vrid {sb.vrid}: {who} both master {_span(sb.start, sb.end, t0)}"
            f" ({sb.duration_s:.2f} s, {sb.adverts[0]}+{sb.adverts[1]} adverts)"
        )
    return lines


def _failover_lines(c: CaptureAnalysis, t0: float, names: Mapping[str, str] | None) -> list[str]:
    fo = c.failover
    if fo is None:
        return ["Failover: none seen (no new master took over)"]
    old, new = label(fo.old_master, names), label(fo.new_master, names)
    lines = [
        f"Failover ({fo.kind}): {old} -> {new}",
        f"  last advert of old master   {_rel(fo.old_last_time, t0)} prio {fo.old_last_priority}",
        f"  first advert of new master  {_rel(fo.new_first_time, t0)} prio {fo.new_priority}",
        f"  first gratuitous ARP        {_rel(fo.first_garp_time, t0)}",
        f"  takeover measured           {fo.takeover_s:.3f} s",
    ]
    if fo.fault_to_takeover_s is not None:
        lines.append(f"  fault to new master         {fo.fault_to_takeover_s:.3f} s")
    if c.expected is not None:
        e = c.expected
        how = (
            f"skew {e.skew_s:.3f} s alone" if e.fault == "clean_stop"
            else f"3 x {e.advert_int:g} s + skew {e.skew_s:.3f} s"
        )
        lines.append(
            f"  takeover expected           {e.bound_s:.3f} s = {how} "
            f"(VRRPv{e.version}, backup priority {e.backup_priority}, {e.fault})"
        )
    if c.takeover_delta_s is not None:
        delta = round(c.takeover_delta_s, 3) + 0.0  # no "-0.000"
        lines.append(f"  measured - expected         {delta:+.3f} s")
    return lines


def _probe_lines(p: ProbeAnalysis, t0: float) -> list[str]:
    lines = [f"Client probes: {p.total} requests, {p.failed_total} failed in all"]
    if p.failed == 0:
        lines.append("  no failed request around the fault: no client-visible outage")
    else:
        outage = "never recovered" if p.outage_s is None else f"{p.outage_s:.3f} s"
        lines += [
            f"  outage: {p.failed} failed requests {_span(p.first_failed, p.last_failed, t0)}"
            f" (span {p.failed_span_s:.3f} s)",
            f"  last success before {_rel(p.last_ok_before, t0)}, first after "
            f"{_rel(p.first_ok_after, t0)}: outage {outage}",
            "  errors: " + ", ".join(f"{err} x{n}" for err, n in sorted(p.errors.items())),
        ]
    if p.max_latency_s is not None:
        lines.append(f"  slowest success around the fault: {p.max_latency_s:.3f} s")
    lines.append(
        f"  servers before: {', '.join(p.servers_before) or '-'}; "
        f"after: {', '.join(p.servers_after) or '-'}"
    )
    return lines


def experiment_lines(exp: Experiment, names: Mapping[str, str] | None = None) -> list[str]:
    """One run: capture and probe summary, VIP holders, restore, then the verdict line."""
    lines = _evidence_lines(exp, names)
    if exp.backup_holds_vip_after_s is not None:
        preempted = ("" if exp.preempted_back_after_s is None
                     else f", preempted back in {exp.preempted_back_after_s:.2f} s")
        lines.append(f"{exp.backup} held the VIP {exp.backup_holds_vip_after_s:.2f} s after "
                     f"the fault (read over SSH); after restore: {exp.holders_after_restore}"
                     + preempted)
    if exp.steady_after_restore_s is not None:
        failed = exp.failed_after_restore
        detail = f" ({', '.join(f'{k} x{v}' for k, v in failed.items())})" if failed else ""
        lines.append(f"steady state back {exp.steady_after_restore_s:.2f} s after the "
                     f"restore; requests failed after the restore: {sum(failed.values())}"
                     + detail)
    verdict = "PASS" if exp.ok else "FAIL: " + "; ".join(exp.problems)
    lines.append(f"expectation ({exp.backup} takes the VIP, app answers, no split brain, "
                 f"steady state restored): {verdict}")
    return lines


def _evidence_lines(exp: Experiment, names: Mapping[str, str] | None) -> list[str]:
    if exp.capture is not None:
        lines = format_summary(exp.capture, exp.probes, names)
        if exp.pcap is not None:
            lines.append(f"capture: {exp.pcap} ({len(exp.packets)} packets), "
                         f"timeline: {exp.png}")
        return lines
    if exp.probes is not None:
        p = exp.probes
        return [f"probes: {p.total} sent, {p.failed} failed in the outage, outage "
                f"{_seconds(p.outage_s)} (failed span {_seconds(p.failed_span_s)})"]
    return []


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def repeat_lines(run: DrillRun) -> list[str]:
    """min / median / max of the takeover and the outage over the runs (none for one run)."""
    if run.repeat < 2:
        return []
    lines = []
    for name, measured in (("takeover (capture)", run.takeovers()),
                           ("client outage (probes)", run.outages())):
        values = spread(measured)
        if values:
            lines.append(f"{name} over {values['n']} runs: min {values['min']:.3f} s, "
                         f"median {values['median']:.3f} s, max {values['max']:.3f} s")
    return lines


def interruption_line(run: DrillRun) -> str:
    """What a Ctrl-C left behind: a router whose restore did not complete, or nothing."""
    if run.left_faulted:
        return (f"interrupted during the restore of {run.left_faulted}: check it with "
                "`python runbooks/lab.py status` and re-run runbooks/deploy.py")
    return "interrupted; nothing left faulted"


def header_lines(ctx: DrillContext, fault: Fault, repeat: int) -> list[str]:
    """The fault, the VRRP timers it meets, and what keepalived should do."""
    return [f"drill: {fault.name} x{repeat}, VIP {ctx.vip} (VRRPv{ctx.vrrp_version}, advert_int "
            f"{ctx.advert_int:g} s, preempt {'on' if ctx.preempt else 'off'}).",
            f"  {fault.story}"]
