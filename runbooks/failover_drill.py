"""Failover drill: fault a proxy or a web server, measure what the clients see.

rp: the backup proxy takes the VIP over (VRRP); web: NGINX retries on the other servers.

Every option is checked before any work (exit 2); the drill itself lives in tasks/drill.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from tasks.core.settings import ProjectError, Settings, fail, load_settings
from tasks.drill import arguments as a
from tasks.drill import report as text
from tasks.drill import web_report
from tasks.drill.context import DrillOptions, build_context
from tasks.drill.evidence import EvidencePaths
from tasks.drill.experiment import run_drill
from tasks.drill.faults import fault_named
from tasks.drill.offline import analyze_saved_capture, capture_exit_code
from tasks.drill.record import Experiment
from tasks.drill.web_context import build_web_context
from tasks.drill.web_experiment import run_web_drill
from tasks.drill.web_faults import web_fault_named
from tasks.drill.web_record import WebExperiment
from tp5lab.control import Lab

RP_PROBE_TIMEOUT = DrillOptions().probe_timeout  # short: a takeover shows as failed requests

console = Console(highlight=False, soft_wrap=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--config", default=None, help="Nornir config.yaml (default: the repo's)")
    add("--capture", action="store_true", help="sniff VRRP and ARP into a pcap, analyse it")
    add("--fault", default="crash", help="; ".join(
        f"{g}: {'|'.join(f)}" for g, f in a.GROUP_FAULTS.items()) + " (default crash)")
    add("--iface", help="capture interface (default: the lab bridge; needed on real machines)")
    add("--group", type=a.drillable_group, default="rp",
        help="rp: the VRRP routers (default); web: the web servers behind NGINX")
    add("--target", help="host to fault (default: rp the MASTER, web the first web server)")
    add("--repeat", type=a.count(1, 50), default=1, help="run the experiment N times (1..50)")
    add("--probe-interval", type=a.seconds(0.005, 1), default=0.02, help="0.005..1 s (0.02)")
    add("--probe-timeout", type=a.seconds(0.05, 30), default=None,
        help=f"0.05..30 s (rp {RP_PROBE_TIMEOUT}; web: the proxy timeouts' bound + 1 s)")
    add("--settle", type=a.seconds(0, 600), default=15.0, help="steady-state wait 0..600 s (15)")
    add("--json", type=a.output_path, help="write the results as JSON here")
    add("--pcap", type=a.output_path, help="keep the capture here (default out/drill-F.pcap)")
    add("--png", type=a.output_path,
        help="timeline picture (default out/drill-F.png; web: out/drill-web-F.png)")
    add("--analyze", type=a.input_file, metavar="FILE", help="only analyse a saved capture")
    add("--vip", type=a.ipv4, help="with --analyze: the VIP (default: the inventory's)")
    args = p.parse_args(argv)
    if args.vip and not args.analyze:
        p.error("--vip goes with --analyze; a drill takes the VIP from the inventory")
    given = {o for o in a.CAPTURE_OPTIONS if getattr(args, o)}
    problem = None if args.analyze else a.combination_problem(args.group, args.fault, given)
    if problem:
        p.error(problem)
    return args


def analyze_only(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    capture, lines = analyze_saved_capture(args.analyze, settings, args.vip, args.png)
    show(lines)
    save_json(args.json, {"capture": capture.to_dict()})
    return capture_exit_code(capture)


def progress(message: str) -> None:
    show([f"{time.strftime('%H:%M:%S')} … {message}"], "dim")


def drill(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.group == "web":
        return web_drill(args, settings)
    fault = fault_named(args.fault, settings.is_lab)
    lab = Lab(settings) if settings.is_lab else None  # tasks/ never imports tp5lab
    options = DrillOptions(args.capture, args.iface, args.probe_interval,
                           args.probe_timeout or RP_PROBE_TIMEOUT, args.settle)
    ctx = build_context(settings, args.group, options, target=args.target, lab=lab,
                        progress=progress)
    show(text.header_lines(ctx, fault, args.repeat))

    def print_run(number: int, exp: Experiment) -> None:
        console.rule(f"{exp.fault} on {exp.target} (run {number}/{args.repeat})")
        *lines, verdict = text.experiment_lines(exp, ctx.names)
        show(lines)
        show([verdict], "green" if exp.ok else "red")

    run = run_drill(ctx, fault, args.repeat, args.target, EvidencePaths(args.pcap, args.png),
                    on_experiment=print_run)
    show(text.repeat_lines(run))
    save_json(args.json, run.to_dict())
    if run.interrupted:
        print(text.interruption_line(run), file=sys.stderr)
        return 130
    return 0 if run.ok else 1


def web_drill(args: argparse.Namespace, settings: Settings) -> int:
    fault = web_fault_named(args.fault, settings.is_lab)
    options = DrillOptions(probe_interval=args.probe_interval, settle_timeout=args.settle)
    ctx = build_web_context(settings, options, target=args.target,
                            probe_timeout=args.probe_timeout,
                            lab=Lab(settings) if settings.is_lab else None, progress=progress)
    show(web_report.header_lines(ctx, fault, args.repeat))

    def print_run(number: int, exp: WebExperiment) -> None:
        console.rule(f"{exp.fault} on {exp.target} (run {number}/{args.repeat})")
        *lines, verdict = web_report.experiment_lines(exp)
        show(lines)
        show([verdict], "green" if exp.ok else "red")

    paths = EvidencePaths(None, args.png)
    run = run_web_drill(ctx, fault, args.repeat,
                        lambda n: paths.for_run(f"web-{fault.name}", n, args.repeat)[1],
                        on_experiment=print_run)
    save_json(args.json, run.to_dict())
    if run.interrupted:
        print(web_report.interruption_line(run.left_faulted), file=sys.stderr)
        return 130
    return 0 if run.ok else 1


def save_json(path: Path | None, data: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, default=str))
        show([f"results: {path}"])


def show(lines: list[str], style: str | None = None) -> None:
    for line in lines:
        console.print(line, style=style, markup=False)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return analyze_only(args) if args.analyze else drill(args)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ProjectError as exc:
        fail(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
