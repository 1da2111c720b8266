"""The local lab: `python runbooks/lab.py up|down|status|shell HOST [-- CMD...]`.

Also the faults the drill uses: `crash HOST`, `cut HOST`, `uncut HOST`, `restart HOST`.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import os
import sys
import time

from rich.console import Console
from rich.table import Table

from tasks.core.nornir_build import check_inventory_or_raise
from tasks.core.settings import ProjectError, fail, load_settings
from tp5lab import etc_hosts, paths
from tp5lab.control import Lab
from tp5lab.status import collect_status

console = Console()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="create or repair the lab (idempotent); nodes that left "
                        "the inventory are removed; the app's name goes to /etc/hosts")
    up.add_argument("--no-hosts", action="store_true",
                    help="leave /etc/hosts alone (no app name -> VIP block)")
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("status", help="table of nodes, reachability and services")
    for name, text in (("crash", "kill the node's PID 1 and its link (a dead box)"),
                       ("cut", "take the node's cable down"), ("uncut", "put the cable back"),
                       ("restart", "boot a crashed node again")):
        sub.add_parser(name, help=text).add_argument("host")
    shell = sub.add_parser("shell", help="root shell in a node, or run CMD after --")
    shell.add_argument("host")
    shell.add_argument("cmd", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def print_status(lab: Lab, config: str | None) -> int:
    rows = collect_status(lab, config)
    table = Table(title=f"lab {lab.bridge}: {len(rows)} node(s)")
    for col in ("node", "address", "pid 1", "link", "ssh", "hostname", "services"):
        table.add_column(col)
    bad = 0
    for row in rows:
        bad += not row.ssh_ok
        table.add_row(row.name, row.address, str(row.pid1 or "-"), "up" if row.link_up else "DOWN",
                      "[green]ok[/]" if row.ssh_ok else f"[red]{row.error or 'no'}[/]",
                      row.hostname or "-", " ".join(row.services) or "-")
    console.print(table)
    console.print(f"{len(rows) - bad}/{len(rows)} reachable over SSH")
    return 0 if bad == 0 else 1


def lab_up(lab: Lab, config: str | None, hosts: bool) -> int:
    """`up`: converge the lab, say what changed (removed nodes, app name), print the table."""
    report = lab.up(progress=lambda m: console.print(f"[dim]… {m}[/]"),
                    hosts_file=etc_hosts.HOSTS_FILE if hosts else None)
    console.print(
        f"lab up: {len(lab.nodes)} node(s) in {report.seconds:.1f} s "
        f"(created {len(report.created)}, started {len(report.started)}, "
        f"repaired {len(report.repaired)}: {' '.join(report.repaired) or 'none'})")
    if report.removed:
        console.print(f"removed {' '.join(report.removed)}: no longer in the inventory")
    if report.app is not None:
        console.print(f"{etc_hosts.HOSTS_FILE}: {report.app.name} -> {report.app.address} "
                      f"(try: curl http://{report.app.name}/)")
    elif not hosts:
        console.print(f"{etc_hosts.HOSTS_FILE} left alone (--no-hosts)")
    return print_status(lab, config)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = load_settings(args.config)
    if not settings.is_lab:
        raise ProjectError(f"{settings.config_file}: user_defined.target is 'real'; "
                           "the local lab only serves target 'lab'", 2)
    check_inventory_or_raise(settings)
    lab = Lab(settings)
    if args.action == "shell":
        cmd = [c for c in args.cmd if c != "--"] or ["/bin/bash", "-l"]
        os.execvp("nsenter", lab.nsenter_argv(args.host, cmd))
    if args.action == "status":
        if not lab.is_up():
            console.print(f"lab is down (no bridge {lab.bridge}); run: python runbooks/lab.py up")
            return 1
        return print_status(lab, args.config)
    with paths.lab_lock():
        started = time.monotonic()
        if args.action == "up":
            return lab_up(lab, args.config, hosts=not args.no_hosts)
        if args.action == "down":
            removed = lab.down()
            console.print(f"lab down in {time.monotonic() - started:.1f} s: removed "
                          f"{len(removed)} item(s)")
            return 0
        getattr(lab, {"crash": "crash", "cut": "cut_link", "uncut": "restore_link",
                      "restart": "restart"}[args.action])(args.host)
        console.print(f"{args.action} {args.host}: done")
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ProjectError as exc:
        fail(exc)
