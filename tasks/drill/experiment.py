"""The failover drill as data and steps: steady state, observe, inject, expect, restore.

`Fault`s say how to break the MASTER and how to put it back; `run_experiment` runs one
experiment and always restores (also on error or Ctrl-C). Observation: a Scapy sniffer on
the lab bridge (VRRP and ARP), a probe loop through the VIP, and the VIP holders read from
the proxies themselves.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nornir.core import Nornir
from nornir.core.task import Result

from tasks.core.connection import CONNECTION
from tasks.core.probe import ProbeLoop
from tasks.core.remote import run_command
from tasks.deploy.checks import check_round_robin, read_addresses
from tasks.deploy.checks import vip_holders as holding
from tasks.drill.probe_analysis import ProbeAnalysis, ProbeRecord, analyze_probes
from tasks.drill.vrrp_analysis import CaptureAnalysis, analyze_capture, expected_takeover

STEADY_STATE_TIMEOUT = 20.0  # after a restore, the stack must be healthy again within this


class DrillError(Exception):
    """The drill could not run or its expectation did not hold."""


# --- reading the proxies -----------------------------------------------------------------
def vip_holders(nr: Nornir, vip: str, interface: str) -> tuple[list[str], list[str]]:
    """(hosts holding the VIP, hosts that could not be read)."""
    results = nr.run(task=read_addresses, interface=interface, on_failed=True)
    addresses = {h: r[0].result for h, r in results.items() if not r.failed}
    unreadable = sorted(h for h, r in results.items() if r.failed)
    for h in unreadable:
        _drop_connection(nr, h)
    return holding(addresses, vip), unreadable


def _drop_connection(nr: Nornir, host: str) -> None:
    try:
        nr.inventory.hosts[host].close_connections()
    except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is gone anyway
        nr.inventory.hosts[host].connections.pop(CONNECTION, None)


def sh(nr: Nornir, host: str, command: str, timeout: float = 30) -> str:
    """Run a command on one host, raising DrillError with its output on failure."""
    result = nr.filter(name=host).run(task=lambda t: Result(
        host=t.host, result=run_command(t, command, timeout=timeout)), on_failed=True)[host]
    if result.failed:
        _drop_connection(nr, host)
        raise DrillError(f"{host}: `{command}`: {result[0].exception}")
    out = result[0].result
    if not out.ok:
        raise DrillError(f"{host}: `{command}` exited {out.rc}: {out.stderr.strip()}")
    return out.stdout


# --- faults ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """One way to fail the MASTER, what keepalived should do, and how to undo it."""

    name: str
    story: str
    bound_kind: str  # "crash" (backup waits master-down) or "clean_stop" (skew only)
    needs_lab: bool
    inject: Callable[[DrillContext], None]
    restore: Callable[[DrillContext], None]


def _ensure_services(ctx: DrillContext) -> None:
    """Start nginx and keepalived on the target if they are not running (after a reboot)."""
    deadline = time.monotonic() + 10
    command = ("for s in nginx keepalived; do pidof $s >/dev/null || service $s start; done; "
               "pidof nginx >/dev/null && pidof keepalived >/dev/null")
    while True:
        try:
            sh(ctx.nr, ctx.target, command)
            return
        except DrillError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _lab(ctx: DrillContext) -> Any:
    if ctx.lab is None:
        raise DrillError("this fault needs the local lab (config.yaml target: lab)")
    return ctx.lab


def _restart_node(ctx: DrillContext) -> None:
    _lab(ctx).restart(ctx.target)
    _drop_connection(ctx.nr, ctx.target)
    _ensure_services(ctx)


def _restore_link(ctx: DrillContext) -> None:
    _lab(ctx).restore_link(ctx.target)


FAULTS: dict[str, Fault] = {
    "crash": Fault(
        "crash",
        "the whole node dies (PID 1 killed, every process gone, link down): it sends no "
        "goodbye, so the BACKUP waits the master-down interval (3 x advert_int + skew)",
        "crash", True,
        lambda ctx: _lab(ctx).crash(ctx.target),
        _restart_node,
    ),
    "link": Fault(
        "link",
        "the node's cable is cut: it keeps running (and goes to FAULT on carrier loss) but "
        "nothing it sends arrives, so the BACKUP waits the master-down interval",
        "crash", True,
        lambda ctx: _lab(ctx).cut_link(ctx.target),
        _restore_link,
    ),
    "stop": Fault(
        "stop",
        "keepalived stops cleanly: it sends a priority-0 advertisement, so the BACKUP takes "
        "over after its skew time alone",
        "clean_stop", False,
        lambda ctx: sh(ctx.nr, ctx.target, "service keepalived stop"),
        _ensure_services,
    ),
    "nginx": Fault(
        "nginx",
        "only nginx dies (SIGKILL): keepalived's chk_nginx fails (fall x interval), the "
        "instance goes to FAULT and sends priority 0; the BACKUP takes over after its skew",
        "clean_stop", False,
        lambda ctx: sh(ctx.nr, ctx.target, "pkill -9 -x nginx; sleep 0.05; ! pidof nginx"),
        _ensure_services,
    ),
}


# --- the experiment ----------------------------------------------------------------------
@dataclass
class DrillContext:
    """Everything an experiment needs, built by the runbook."""

    nr: Nornir  # the proxies
    lab: Any  # tp5lab.control.Lab, or None on real machines
    vip: str
    interface: str
    bridge: str | None  # lab bridge (route check of the probes), None on real machines
    iface: str | None  # where the sniffer listens
    target: str
    backup: str
    web_fqdns: list[str]
    vrrp_version: int
    advert_int: float
    backup_priority: int
    preempt: bool
    preempt_delay: float
    names: dict[str, str]  # address -> host name, for reports
    capture: bool = True
    probe_interval: float = 0.02
    probe_timeout: float = 0.3
    settle_timeout: float = 15.0  # how long the steady state may take to hold before a fault
    explicit_target: bool = False  # --target given: never re-aim at the current holder
    priorities: dict[str, int] = field(default_factory=dict)  # router -> VRRP priority
    pending_restore: str | None = None  # a faulted node whose restore has not completed
    progress: Callable[[str], None] = lambda _m: None


@dataclass
class Experiment:
    """What one experiment saw and concluded."""

    fault: str
    target: str
    backup: str
    fault_time: float = 0.0
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
            "capture": self.capture.to_dict() if self.capture else None,
            "probes": self.probes.to_dict() if self.probes else None,
        }


def steady_state(ctx: DrillContext, expected_holder: str) -> list[str]:
    """Problems with the steady state (empty: healthy): one VIP holder, the app answering."""
    problems = []
    holders, unreadable = vip_holders(ctx.nr, ctx.vip, ctx.interface)
    if unreadable:
        problems.append(f"cannot read the VIP holders on: {', '.join(unreadable)}")
    if holders != [expected_holder]:
        problems.append(f"VIP {ctx.vip} held by {holders or 'nobody'}, expected "
                        f"exactly {expected_holder}")
    seen = check_round_robin(ctx.vip, 2 * len(ctx.web_fqdns), ctx.bridge, timeout=2.0)
    if seen.errors:
        problems.append(f"requests through the VIP failed: {dict(Counter(seen.errors))}")
    missing = sorted(set(ctx.web_fqdns) - set(seen.order))
    if missing:
        problems.append(f"web servers not answering through the VIP: {', '.join(missing)}")
    return problems


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float | None:
    """Seconds until predicate() held, or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None


def theoretical_bound(ctx: DrillContext, fault: Fault) -> float:
    return expected_takeover(ctx.vrrp_version, ctx.advert_int, ctx.backup_priority,
                             fault.bound_kind).bound_s  # type: ignore[arg-type]


def run_experiment(ctx: DrillContext, fault: Fault) -> Experiment:
    """Observe, inject `fault` on ctx.target, check the takeover, restore, check again."""
    if not ctx.preempt and not ctx.explicit_target:
        _aim_at_current_holder(ctx)
    exp = Experiment(fault.name, ctx.target, ctx.backup)
    problems: list[str] = []

    def healthy() -> bool:
        problems[:] = steady_state(ctx, ctx.target)
        return not problems

    # A transient fault (e.g. a web server nginx still marks failed) may clear by itself.
    if _wait(healthy, ctx.settle_timeout, step=0.5) is None:
        exp.problems = ["steady state not met, nothing injected: " + p for p in problems]
        return exp
    sniffer = None
    probes: ProbeLoop | None = None
    bound = theoretical_bound(ctx, fault)
    window = bound + 8.0 + (2.5 if fault.name == "nginx" else 0.0)
    injected = False
    try:
        if ctx.capture:
            from scapy.sendrecv import AsyncSniffer

            sniffer = AsyncSniffer(iface=ctx.iface, filter="ip proto 112 or arp", store=True)
            sniffer.start()
        probes = ProbeLoop(ctx.vip, ctx.probe_interval, ctx.probe_timeout, 90).start()
        time.sleep(max(2.2 * ctx.advert_int, 1.0))
        ctx.progress(f"inject {fault.name} on {ctx.target}: {fault.story}")
        exp.fault_time = time.time()
        injected = True
        fault.inject(ctx)

        def backup_holds() -> bool:
            holders, _ = vip_holders(ctx.nr.filter(name=ctx.backup), ctx.vip, ctx.interface)
            return holders == [ctx.backup]

        exp.backup_holds_vip_after_s = _wait(backup_holds, window)
        if exp.backup_holds_vip_after_s is None:
            exp.problems.append(f"{ctx.backup} did not take the VIP within {window:.1f} s")
        else:
            ctx.progress(f"{ctx.backup} holds the VIP "
                         f"{exp.backup_holds_vip_after_s:.2f} s after the fault")

        def answered_after() -> bool:
            assert probes is not None
            return any(r.ok and r.time > exp.fault_time + 0.05 for r in probes.records_so_far())

        if _wait(answered_after, window) is None:
            exp.problems.append("the app did not answer through the VIP after the fault")
        time.sleep(1.0)
        holders, _ = vip_holders(ctx.nr, ctx.vip, ctx.interface)
        exp.holders_after_fault = holders
    finally:
        try:
            if injected:
                ctx.pending_restore = ctx.target
                ctx.progress(f"restore {ctx.target} ({fault.name})")
                exp.restore_time = time.time()
                try:
                    fault.restore(ctx)
                    ctx.pending_restore = None
                except Exception as exc:  # noqa: BLE001 - reported, and the drill fails
                    exp.problems.append(f"restore of {ctx.target} failed: {exc}")
            if injected and not exp.problems:
                _settle_after_restore(ctx, exp)
        finally:  # the probes and the sniffer stop whatever happened above
            exp.records = probes.stop() if probes is not None else []
            if sniffer is not None and sniffer.running:
                exp.packets = list(sniffer.stop() or [])
    if not injected:
        return exp
    if not exp.holders_after_restore:  # the restore did not reach a verified steady state
        exp.holders_after_restore, _ = vip_holders(ctx.nr, ctx.vip, ctx.interface)
    exp.probes = analyze_probes(exp.records, exp.fault_time)
    if not exp.probes.recovered:
        exp.problems.append("the probes never succeeded again after the fault")
    if exp.holders_after_fault != [ctx.backup]:
        exp.problems.append(f"after the fault the VIP was on {exp.holders_after_fault}, "
                            f"expected only {ctx.backup}")
    if sniffer is not None:
        exp.capture = analyze_capture(exp.packets, ctx.vip, exp.fault_time)
        fo = exp.capture.failover
        if fo is None:
            exp.problems.append("the capture shows no takeover after the fault")
        elif (ctx.names.get(fo.old_master), ctx.names.get(fo.new_master)) != (
                ctx.target, ctx.backup):
            exp.problems.append(f"the capture shows a takeover {fo.old_master} -> "
                                f"{fo.new_master}, expected {ctx.target} -> {ctx.backup}")
        if exp.capture.split_brains:
            exp.problems.append(f"split brain: {len(exp.capture.split_brains)} interval(s) "
                                "with two masters advertising")
    if exp.restore_time is not None:
        after = [r for r in exp.records if r.time >= exp.restore_time]
        exp.failed_after_restore = dict(Counter(r.error or "?" for r in after if not r.ok))
    return exp


def _aim_at_current_holder(ctx: DrillContext) -> None:
    """Without preemption the VIP stays where the last failover put it: fault that node."""
    holders, _ = vip_holders(ctx.nr, ctx.vip, ctx.interface)
    if holders == [ctx.backup]:
        ctx.target, ctx.backup = ctx.backup, ctx.target
        ctx.backup_priority = ctx.priorities.get(ctx.backup, ctx.backup_priority)


def _settle_after_restore(ctx: DrillContext, exp: Experiment) -> None:
    """Wait (bounded) for the VIP to settle where the config says, then for a healthy stack."""
    expected = ctx.target if ctx.preempt else ctx.backup

    def settled() -> bool:
        holders, _ = vip_holders(ctx.nr, ctx.vip, ctx.interface)
        return holders == [expected]

    took = _wait(settled, ctx.preempt_delay + 4 * ctx.advert_int + 10.0, step=0.1)
    if ctx.preempt:
        exp.preempted_back_after_s = took
    if took is None:
        exp.problems.append(f"after the restore the VIP did not settle on {expected}")
        return
    last: list[str] = []

    def healthy() -> bool:
        last[:] = steady_state(ctx, expected)
        return not last

    healthy_after = _wait(healthy, STEADY_STATE_TIMEOUT, step=0.5)
    if healthy_after is None:
        exp.problems.append(f"steady state not back {STEADY_STATE_TIMEOUT:.0f} s after the "
                            "restore: " + "; ".join(last))
    else:
        exp.steady_after_restore_s = time.time() - (exp.restore_time or time.time())
        exp.holders_after_restore = [expected]  # what that steady-state check just read
    time.sleep(0.5)


def spread(values: list[float]) -> dict[str, float] | None:
    """min / median / max of measured values (None if there are none)."""
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}
