"""Deploy the stack: `python runbooks/deploy.py [--group G]... [--host H]... [--dry-run]`.

Every targeted host runs in parallel (Nornir's threaded runner); the db tier applies first,
then web, then rp (a proxy's Keepalived at once). Then the database check, the VIP check and
round-robin through the VIP. Exit 0 only when every targeted host and check succeeded; 1 when
one failed; 2 for a bad argument or inventory (before any work: numbers, the --json folder,
host names, a selection of no host); 3 when the lab is not ready.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import gc
import json
import sys

from rich.console import Console

from tasks.core import arguments as a
from tasks.core.settings import ProjectError, fail
from tasks.deploy.report import print_check, print_diffs, print_table, summary
from tasks.deploy.stack import DeployOptions, deploy_stack

console = Console(highlight=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    parser.add_argument("--group", action="append", default=[], choices=["web", "rp", "db"],
                        help="only this tier (repeatable)")
    parser.add_argument("--host", action="append", default=[], help="only this host (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="show the diffs, change nothing")
    parser.add_argument("--diff", action="store_true", help="print the diffs applied")
    parser.add_argument("--verbose", action="store_true",
                        help="also print every step's Result (nornir-utils print_result)")
    parser.add_argument("--json", type=a.output_path,
                        help="write a machine-readable summary here (its folder must exist)")
    parser.add_argument("--requests", type=a.count(0, 10000, "0: 3 per web server"),
                        default=0, help="requests through the VIP, 0..10000 "
                                        "(default 0: 3 per web server)")
    parser.add_argument("--vip-wait", type=a.seconds(0, 600), default=10.0,
                        help="seconds to wait for the VRRP election, 0..600 (default 10)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    # Everything loaded so far lives until the exit: the collections during the run (its
    # threads allocate a lot) need not scan it again and again.
    gc.freeze()
    args = parse_args(argv)
    outcome = deploy_stack(DeployOptions(
        config=args.config, groups=tuple(args.group), hosts=tuple(args.host),
        dry_run=args.dry_run, requests=args.requests, vip_wait=args.vip_wait), console)
    reports, checks = outcome.reports, outcome.checks
    if args.verbose:
        from nornir_utils.plugins.functions import print_result  # colorama: only when asked

        print_result(outcome.results)
    print_table(console, reports, f"{outcome.mode}: {len(reports)} host(s) in "
                                  f"{checks['deploy_seconds']:.2f} s")
    if args.diff or args.dry_run:
        print_diffs(console, reports)
    for check in outcome.lines:
        print_check(console, check.ok, check.line)
    if args.json:
        try:
            args.json.write_text(json.dumps(summary(reports, checks), indent=2) + "\n")
        except OSError as exc:  # the folder was checked first; it went away since
            raise ProjectError(f"--json {args.json}: {exc.strerror or exc}", 2) from None
    failed = outcome.failed
    console.print(f"{'[green]ok[/]' if outcome.ok else '[red]FAILED[/]'}: "
                  f"{len(reports) - len(failed)}/{len(reports)} host(s) ok"
                  f"{' (failed: ' + ', '.join(failed) + ')' if failed else ''}, "
                  f"{checks['total_seconds']:.2f} s in all")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ProjectError as exc:
        fail(exc)
