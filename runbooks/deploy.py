"""Deploy the stack: `python runbooks/deploy.py [--group G]... [--host H]... [--dry-run]`.

Every targeted host runs in parallel (Nornir's threaded runner); the db tier applies first,
then web, then rp. Then the VIP check and round-robin through the VIP. Exit 0 only when
every targeted host and check succeeded.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import json
import sys
import time
from pathlib import Path

from nornir.core.filter import F
from rich.console import Console

from tasks.core.inventory import tier_hosts, tier_of
from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.deploy.checks import check_round_robin, wait_for_vip
from tasks.deploy.host import TierGate, deploy_node
from tasks.deploy.report import Progress, print_diffs, print_table, report_of, summary

console = Console(highlight=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    parser.add_argument("--group", action="append", default=[], choices=["web", "rp", "db"],
                        help="only this tier (repeatable)")
    parser.add_argument("--host", action="append", default=[], help="only this host (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="show the diffs, change nothing")
    parser.add_argument("--diff", action="store_true", help="print the diffs applied")
    parser.add_argument("--json", type=Path, help="write a machine-readable summary here")
    parser.add_argument("--requests", type=int, default=0,
                        help="requests through the VIP (default: 3 per web server)")
    parser.add_argument("--vip-wait", type=float, default=10.0,
                        help="seconds to wait for the VRRP election (default 10)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    settings = load_settings(args.config)
    # Every host (rendering needs the whole inventory); names checked before the lab (exit 2).
    nr = build_nornir(args.config, check_lab=False)
    run = select_hosts(nr, args.group, args.host)
    ensure_reachable(nr, settings)
    names = list(run.inventory.hosts)
    tiers = [tier_of(h) for h in run.inventory.hosts.values()]
    gate = TierGate({t: tiers.count(t) for t in set(tiers)})
    mode = "dry run" if args.dry_run else "deploy"
    console.print(f"{mode}: {len(names)} host(s) in parallel: {' '.join(names)}")
    run.processors.append(Progress(console))
    # Hosts wait for earlier tiers inside the runner: every host needs its own worker, or
    # web hosts holding all the workers would wait forever for a db host never started.
    run.runner.num_workers = max(run.runner.num_workers, len(names))
    results = run.run(task=deploy_node, inventory=nr.inventory, dry_run=args.dry_run,
                      lab_mode=settings.is_lab, gate=gate)
    deployed = time.monotonic() - started
    reports = [report_of(run.inventory.hosts[h], results[h]) for h in names]
    print_table(console, reports, f"{mode}: {len(names)} host(s) in {deployed:.2f} s")
    if args.diff or args.dry_run:
        print_diffs(console, reports)
    checks: dict = {"dry_run": args.dry_run, "deploy_seconds": round(deployed, 3)}
    ok = all(r.status != "failed" for r in reports)
    if not args.dry_run and {"web", "rp"} & set(tiers):
        ok = end_to_end(nr, args, settings, reports, checks) and ok
    checks["total_seconds"] = round(time.monotonic() - started, 3)
    nr.close_connections()
    if args.json:
        args.json.write_text(json.dumps(summary(reports, checks), indent=2) + "\n")
    failed = [r.name for r in reports if r.status == "failed"]
    console.print(f"{'[green]ok[/]' if ok else '[red]FAILED[/]'}: "
                  f"{len(names) - len(failed)}/{len(names)} host(s) ok"
                  f"{' (failed: ' + ', '.join(failed) + ')' if failed else ''}, "
                  f"{checks['total_seconds']:.2f} s in all")
    return 0 if ok else 1


def end_to_end(nr, args: argparse.Namespace, settings, reports, checks: dict) -> bool:  # noqa: ANN001
    """VIP on the MASTER alone, then round-robin through the VIP; True when both pass."""
    proxies = tier_hosts(nr.inventory, "rp")
    if not proxies:
        return True
    master: str | None = next((h.name for h in proxies if h.get("vrrp_state") == "MASTER"),
                              proxies[0].name)
    if not proxies[0].get("vrrp_preempt", True):
        master = None  # without preemption, after a failover the VIP stays where it went
    vip = str(proxies[0]["vip"])
    rp = nr.filter(F(name__any=[h.name for h in proxies]))
    known = {r.name: r.addresses for r in reports if r.tier == "rp" and r.addresses}
    vip_check = wait_for_vip(rp, vip, master, args.vip_wait, known=known)
    checks["vip"] = {"ok": vip_check.ok, "holders": vip_check.holders, "master": master,
                     "waited": round(vip_check.waited, 3)}
    console.print(f"{'[green]ok[/]' if vip_check.ok else '[red]FAILED[/]'} {vip_check.describe()}")
    failed = {r.name for r in reports if r.status == "failed"}
    all_webs = [f"{h.name}.{h['domain']}" for h in tier_hosts(nr.inventory, "web")]
    webs = [h for h in tier_hosts(nr.inventory, "web") if h.name not in failed]
    expected = [f"{h.name}.{h['domain']}" for h in webs]
    count = args.requests or 3 * max(1, len(expected))
    rr_started = time.monotonic()
    rr = check_round_robin(vip, count, settings.lab_bridge if settings.is_lab else None)
    rr_ok = rr.covers(expected, allowed=all_webs)
    checks["round_robin"] = {"ok": rr_ok, "requests": count, "counts": rr.counts,
                             "errors": rr.errors[:10],
                             "seconds": round(time.monotonic() - rr_started, 3)}
    dist = "  ".join(f"{name}: {n}" for name, n in rr.counts.items()) or "no answer"
    console.print(f"{'[green]ok[/]' if rr_ok else '[red]FAILED[/]'} round-robin through "
                  f"{vip}, {count} requests: {dist}"
                  + (f" ({len(rr.errors)} error(s): {rr.errors[0]})" if rr.errors else ""))
    return vip_check.ok and rr_ok


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ProjectError as exc:
        fail(exc)
