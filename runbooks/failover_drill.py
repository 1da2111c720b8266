"""Failover drill: fault the VRRP MASTER, capture the takeover, measure the client outage.

python runbooks/failover_drill.py [--capture] [--fault crash|link|stop|nginx] [--group rp]
    [--target HOST] [--repeat N] [--json PATH] [--pcap PATH] [--png PATH] [--analyze FILE]
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import json
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.drill.experiment import FAULTS, DrillContext, Experiment, run_experiment, spread
from tasks.drill.report import format_summary
from tasks.drill.timeline_png import render_timeline
from tasks.drill.vrrp_analysis import analyze_capture

console = Console(highlight=False, soft_wrap=True)
OUT = Path("out")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="Nornir config.yaml (default: the repo's)")
    p.add_argument("--capture", action="store_true",
                   help="sniff VRRP and ARP on the lab bridge into a pcap and analyse it")
    p.add_argument("--fault", choices=sorted(FAULTS), default="crash")
    p.add_argument("--iface", default=None,
                   help="interface to capture on (default: the lab bridge; required on real "
                        "machines, e.g. the host-only interface facing the VMs)")
    p.add_argument("--group", default="rp", help="the group of the VRRP routers (default rp)")
    p.add_argument("--target", default=None, help="router to fault (default: the MASTER)")
    p.add_argument("--repeat", type=int, default=1, help="run the experiment N times")
    p.add_argument("--probe-interval", type=float, default=0.02, help="seconds (default 0.02)")
    p.add_argument("--probe-timeout", type=float, default=0.3, help="seconds (default 0.3)")
    p.add_argument("--settle", type=float, default=15.0,
                   help="seconds the steady state may take to hold before the fault (15)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--pcap", type=Path, help="keep the capture here (default out/drill-F.pcap)")
    p.add_argument("--png", type=Path, help="timeline picture (default out/drill-F.png)")
    p.add_argument("--analyze", type=Path, metavar="FILE.pcap",
                   help="only analyse a saved capture (e.g. from Wireshark between two VMs)")
    p.add_argument("--vip", default=None, help="with --analyze: the VIP (default: inventory)")
    args = p.parse_args(argv)
    if not 1 <= args.repeat <= 50:
        p.error("--repeat must be between 1 and 50")
    if not 0.005 <= args.probe_interval <= 1 or not 0.05 <= args.probe_timeout <= 5:
        p.error("--probe-interval must be 0.005..1 s and --probe-timeout 0.05..5 s")
    return args


def inventory_vip(config: str | None) -> str:
    """The rp group's VIP from the inventory files (no connection, no lab needed)."""
    groups = yaml.safe_load(load_settings(config).groups_file.read_text()) or {}
    return str(((groups.get("rp") or {}).get("data") or {}).get("vip", "10.5.1.110"))


def analyze_only(args: argparse.Namespace) -> int:
    if not args.analyze.is_file():
        raise ProjectError(f"{args.analyze}: no such capture file", 2)
    vip = args.vip or inventory_vip(args.config)
    capture = analyze_capture(args.analyze, vip)
    for line in format_summary(capture):
        console.print(line)
    if args.png:
        render_timeline(args.png, capture)
        console.print(f"timeline: {args.png}")
    if args.json:
        args.json.write_text(json.dumps({"capture": capture.to_dict()}, indent=2))
    if capture.failover is None:
        console.print("[red]no takeover found in this capture[/]")
        return 1
    return 1 if capture.split_brains else 0


def build_context(args: argparse.Namespace) -> DrillContext:
    settings = load_settings(args.config)
    nr_all = build_nornir(args.config)
    routers = build_nornir(args.config, groups=[args.group])
    hosts = routers.inventory.hosts
    if len(hosts) < 2:
        raise ProjectError(f"group {args.group} has {len(hosts)} host(s); a drill needs two", 2)
    by_priority = sorted(hosts.values(), key=lambda h: -int(h["vrrp_priority"]))
    master = next((h.name for h in by_priority if h["vrrp_state"] == "MASTER"), None)
    target = args.target or master
    if target not in hosts:
        raise ProjectError(f"--target {target}: not a host of group {args.group} "
                           f"({', '.join(hosts)})", 2)
    backup = next(h for h in by_priority if h.name != target)
    profile = backup["vrrp_profiles"][backup["vrrp_profile"]]
    iface = args.iface or (settings.lab_bridge if settings.is_lab else None)
    if args.capture and iface is None:
        raise ProjectError("--capture on real machines needs --iface (the interface of this "
                           "machine that sees the proxies' VRRP traffic)", 2)
    lab = None
    if settings.is_lab:
        from tasks.core.guard import ensure_lab_targets
        from tp5lab.control import Lab

        ensure_lab_targets(settings, [str(backup["vip"])])  # the probes' only destination
        lab = Lab(settings)
    webs = [h for h in nr_all.inventory.hosts.values() if "web" in h.groups]
    return DrillContext(
        nr=routers, lab=lab, vip=str(backup["vip"]), interface=str(backup["vrrp_interface"]),
        bridge=settings.lab_bridge if settings.is_lab else None, iface=iface, target=target,
        backup=backup.name, web_fqdns=sorted(f"{h.name}.{h['domain']}" for h in webs),
        vrrp_version=int(profile["version"]), advert_int=float(profile["advert_int"]),
        backup_priority=int(backup["vrrp_priority"]),
        preempt=bool(backup.get("vrrp_preempt", True)),
        preempt_delay=float(backup.get("vrrp_preempt_delay", 0)),
        names={h.hostname: h.name for h in nr_all.inventory.hosts.values()},
        explicit_target=args.target is not None,
        priorities={h.name: int(h["vrrp_priority"]) for h in hosts.values()},
        capture=args.capture, probe_interval=args.probe_interval,
        probe_timeout=args.probe_timeout, settle_timeout=args.settle,
        progress=lambda m: console.print(f"[dim]{time.strftime('%H:%M:%S')} … {m}[/]"),
    )


def report(ctx: DrillContext, exp: Experiment, args: argparse.Namespace, run: int) -> None:
    suffix = f"-{run}" if args.repeat > 1 else ""
    console.rule(f"{exp.fault} on {exp.target} (run {run}/{args.repeat})")
    if exp.capture is not None:
        for line in format_summary(exp.capture, exp.probes, ctx.names):
            console.print(line)
        pcap = _out(args.pcap, f"drill-{exp.fault}", ".pcap", suffix)
        from scapy.utils import wrpcap

        wrpcap(str(pcap), exp.packets)
        png = render_timeline(_out(args.png, f"drill-{exp.fault}", ".png", suffix),
                              exp.capture, exp.probes, ctx.names)
        console.print(f"capture: {pcap} ({len(exp.packets)} packets), timeline: {png}")
    elif exp.probes is not None:
        p = exp.probes
        console.print(f"probes: {p.total} sent, {p.failed} failed in the outage, "
                      f"outage {_s(p.outage_s)} (failed span {_s(p.failed_span_s)})")
    if exp.backup_holds_vip_after_s is not None:
        console.print(f"{exp.backup} held the VIP {exp.backup_holds_vip_after_s:.2f} s after "
                      f"the fault (read over SSH); after restore: {exp.holders_after_restore}"
                      + (f", preempted back in {exp.preempted_back_after_s:.2f} s"
                         if exp.preempted_back_after_s is not None else ""))
    if exp.steady_after_restore_s is not None:
        failed = exp.failed_after_restore
        console.print(f"steady state back {exp.steady_after_restore_s:.2f} s after the restore; "
                      f"requests failed after the restore: {sum(failed.values())}"
                      + (f" ({', '.join(f'{k} x{v}' for k, v in failed.items())})"
                         if failed else ""))
    verdict = "[green]PASS[/]" if exp.ok else "[red]FAIL[/]: " + "; ".join(exp.problems)
    console.print(f"expectation ({exp.backup} takes the VIP, app answers, no split brain, "
                  f"steady state restored): {verdict}")


def _out(path: Path | None, stem: str, ext: str, suffix: str) -> Path:
    if path is None:
        OUT.mkdir(exist_ok=True)
        return OUT / f"{stem}{suffix}{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.stem + suffix + path.suffix) if suffix else path


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.analyze:
        return analyze_only(args)
    ctx = build_context(args)
    fault = FAULTS[args.fault]
    if fault.needs_lab and ctx.lab is None:
        raise ProjectError(f"--fault {fault.name} needs the local lab; on real machines use "
                           "--fault stop or --fault nginx", 2)
    console.print(f"drill: {fault.name} on {ctx.target}; {ctx.backup} should take VIP "
                  f"{ctx.vip} (VRRPv{ctx.vrrp_version}, advert_int {ctx.advert_int} s, "
                  f"backup priority {ctx.backup_priority}).\n  {fault.story}")
    experiments = []
    try:
        for run in range(1, args.repeat + 1):
            exp = run_experiment(ctx, fault)
            experiments.append(exp)
            report(ctx, exp, args, run)
            if not exp.ok:
                break
    except KeyboardInterrupt:
        if ctx.pending_restore:
            print(f"interrupted during the restore of {ctx.pending_restore}: check it with "
                  "`python runbooks/lab.py status` and re-run runbooks/deploy.py",
                  file=sys.stderr)
        else:
            print("interrupted; nothing left faulted", file=sys.stderr)
        return 130
    finally:
        ctx.nr.close_connections()
    takeovers = [e.capture.failover.takeover_s for e in experiments
                 if e.capture and e.capture.failover]
    outages = [e.probes.outage_s for e in experiments if e.probes and e.probes.outage_s is not None]
    summary = {"fault": fault.name, "runs": len(experiments),
               "takeover_s": spread(takeovers), "outage_s": spread(outages),
               "experiments": [e.to_dict() for e in experiments]}
    if args.repeat > 1:
        for name, values in (("takeover (capture)", summary["takeover_s"]),
                             ("client outage (probes)", summary["outage_s"])):
            if values:
                console.print(f"{name} over {values['n']} runs: min {values['min']:.3f} s, "
                              f"median {values['median']:.3f} s, max {values['max']:.3f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str))
        console.print(f"results: {args.json}")
    return 0 if experiments and all(e.ok for e in experiments) else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ProjectError as exc:
        fail(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
