"""One drill from the runbook's options: the proxy drill (rp) or the web-tier drill (web).

``run_from_options`` builds the context of the chosen tier, runs the experiments, prints them
through ``show`` and returns the exit code (0 pass, 1 fail, 130 interrupted). The lab control
(tp5lab) is passed in by the runbook: tasks/ never imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.core.settings import Settings, load_settings
from tasks.drill import db_report, web_report
from tasks.drill import report as text
from tasks.drill.context import DrillOptions, LabControl, build_context
from tasks.drill.db_context import build_db_context
from tasks.drill.db_experiment import run_db_drill
from tasks.drill.db_faults import db_fault_named
from tasks.drill.db_record import DbExperiment
from tasks.drill.db_timeline_png import render_db_timeline
from tasks.drill.evidence import EvidencePaths
from tasks.drill.experiment import run_drill
from tasks.drill.faults import fault_named
from tasks.drill.offline import analyze_saved_capture, capture_exit_code
from tasks.drill.record import Experiment
from tasks.drill.web_context import build_web_context
from tasks.drill.web_experiment import run_web_drill
from tasks.drill.web_faults import web_fault_named
from tasks.drill.web_record import WebExperiment

RP_PROBE_TIMEOUT = DrillOptions().probe_timeout  # short: a takeover shows as failed requests
Show = Callable[[list[str], str | None], None]
Rule = Callable[[str], None]


class Printer:
    """Where the drill's lines go: `show(lines, style)` and `rule(title)`."""

    def __init__(self, show: Show, rule: Rule) -> None:
        self.show, self.rule = show, rule

    def progress(self, message: str) -> None:
        self.show([f"{time.strftime('%H:%M:%S')} … {message}"], "dim")

    def experiment(self, title: str, lines: list[str], ok: bool) -> None:
        self.rule(title)
        *body, verdict = lines
        self.show(body, None)
        self.show([verdict], "green" if ok else "red")

    def save_json(self, path: Path | None, data: dict[str, Any]) -> None:
        if path is not None:
            path.write_text(json.dumps(data, indent=2, default=str))
            self.show([f"results: {path}"], None)


def analyze_only(args: argparse.Namespace, out: Printer) -> int:
    """--analyze: the capture analysis of a saved file (no lab, no connection)."""
    settings = load_settings(args.config)
    capture, lines = analyze_saved_capture(args.analyze, settings, args.vip, args.png)
    out.show(lines, None)
    out.save_json(args.json, {"capture": capture.to_dict()})
    return capture_exit_code(capture)


def run_from_options(args: argparse.Namespace, lab: Callable[[Settings], LabControl],
                     out: Printer) -> int:
    """The drill the options name; `lab(settings)` gives the lab control in lab mode."""
    if args.analyze:
        return analyze_only(args, out)
    settings = load_settings(args.config)
    control = lab(settings) if settings.is_lab else None
    if args.group == "web":
        return _web(args, settings, control, out)
    if args.group == "db":
        return _db(args, settings, control, out)
    return _proxies(args, settings, control, out)


def _proxies(args: argparse.Namespace, settings: Settings, lab: LabControl | None,
             out: Printer) -> int:
    fault = fault_named(args.fault, settings.is_lab)
    options = DrillOptions(args.capture, args.iface, args.probe_interval,
                           args.probe_timeout or RP_PROBE_TIMEOUT, args.settle)
    ctx = build_context(settings, args.group, options, target=args.target, lab=lab,
                        progress=out.progress)
    out.show(text.header_lines(ctx, fault, args.repeat), None)

    def print_run(number: int, exp: Experiment) -> None:
        out.experiment(f"{exp.fault} on {exp.target} (run {number}/{args.repeat})",
                       text.experiment_lines(exp, ctx.names), exp.ok)

    run = run_drill(ctx, fault, args.repeat, args.target, EvidencePaths(args.pcap, args.png),
                    on_experiment=print_run)
    out.show(text.repeat_lines(run), None)
    out.save_json(args.json, run.to_dict())
    if run.interrupted:
        print(text.interruption_line(run), file=sys.stderr)
        return 130
    return 0 if run.ok else 1


def _web(args: argparse.Namespace, settings: Settings, lab: LabControl | None,
         out: Printer) -> int:
    fault = web_fault_named(args.fault, settings.is_lab)
    options = DrillOptions(probe_interval=args.probe_interval, settle_timeout=args.settle)
    ctx = build_web_context(settings, options, target=args.target,
                            probe_timeout=args.probe_timeout, lab=lab, progress=out.progress)
    out.show(web_report.header_lines(ctx, fault, args.repeat), None)

    def print_run(number: int, exp: WebExperiment) -> None:
        out.experiment(f"{exp.fault} on {exp.target} (run {number}/{args.repeat})",
                       web_report.experiment_lines(exp), exp.ok)

    paths = EvidencePaths(None, args.png)
    run = run_web_drill(ctx, fault, args.repeat,
                        lambda n: paths.for_run(f"web-{fault.name}", n, args.repeat)[1],
                        on_experiment=print_run)
    out.save_json(args.json, run.to_dict())
    if run.interrupted:
        print(web_report.interruption_line(run.left_faulted), file=sys.stderr)
        return 130
    return 0 if run.ok else 1


def _db(args: argparse.Namespace, settings: Settings, lab: Any, out: Printer) -> int:
    fault = db_fault_named(args.fault)
    ctx = build_db_context(settings, lab, settle_timeout=args.settle, progress=out.progress)
    out.show(db_report.header_lines(fault, args.repeat, ctx.writers, ctx.web), None)
    paths = EvidencePaths(None, args.png)

    def print_run(number: int, exp: DbExperiment) -> None:
        if exp.ops:
            exp.png = render_db_timeline(paths.for_run(f"db-{fault.name}", number,
                                                       args.repeat)[1], exp)
        out.experiment(f"{exp.fault} on {exp.target} (run {number}/{args.repeat})",
                       db_report.experiment_lines(exp), exp.ok)

    run = run_db_drill(ctx, fault, args.repeat, on_experiment=print_run)
    out.show(db_report.repeat_lines(run), None)
    out.save_json(args.json, run.to_dict())
    if run.interrupted:
        print(f"interrupted; left faulted: {run.left_faulted or 'nothing'}", file=sys.stderr)
        return 130
    return 0 if run.ok else 1
