"""Failover drill: fault a proxy, a web server or the database primary, measure what the
clients see.

rp: the backup proxy takes the VIP over (VRRP); web: NGINX retries on the other servers;
db: the watcher promotes the replica; every acknowledged write must survive (lost,
phantom, split-brain writes, write outage).

Every option is checked before any work (exit 2); the drill itself lives in tasks/drill.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import sys

from rich.console import Console

from tasks.core.settings import ProjectError, fail
from tasks.drill import arguments as a
from tasks.drill.run import RP_PROBE_TIMEOUT, Printer, run_from_options
from tp5lab.control import Lab

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
        help="rp: the VRRP routers (default); web: the web servers behind NGINX; db: the "
             "database primary")
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
    given = {o for o in (*a.CAPTURE_OPTIONS, "target") if getattr(args, o)}
    problem = None if args.analyze else a.combination_problem(args.group, args.fault, given)
    if problem:
        p.error(problem)
    return args


def show(lines: list[str], style: str | None = None) -> None:
    for line in lines:
        console.print(line, style=style, markup=False)


def main(argv: list[str]) -> int:
    return run_from_options(parse_args(argv), Lab, Printer(show, console.rule))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ProjectError as exc:
        fail(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
