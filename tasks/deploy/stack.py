"""Deploy the stack: every targeted host in parallel (tiers ordered by the gate), then the
end-to-end checks: the database (marker row and refused write), the VIP, the round-robin.

``deploy_stack`` is the runbook's one call. It reads the Settings once (lab or real
machines: ``Settings.is_lab``) and passes them down, with one admin connection per db node
for the whole run (``tasks.db.links.for_run``); Nornir's own dry-run
(``nr.data.dry_run``, read by ``task.is_dry_run()``) applies to every task of the run; the
progress processor is attached to the deploy run alone, so later runs print nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nornir.core import Nornir
from nornir.core.filter import F
from nornir.core.task import AggregatedResult
from nornir.plugins.runners import ThreadedRunner
from rich.console import Console

from tasks.core.inventory import expected_master, tier_hosts, tier_of, vip
from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import ProjectError, Settings, load_settings
from tasks.db.links import for_run
from tasks.db.sql import DbTarget
from tasks.db.verify import verify_db
from tasks.deploy.checks import check_round_robin, wait_for_vip
from tasks.deploy.errors import describe_error
from tasks.deploy.host import Stack, deploy_host
from tasks.deploy.order import TierGate
from tasks.deploy.report import HostReport, Progress, report_of

# Requests through the VIP at a time: each page commits a row on the primary (fsync and a
# replica's acknowledgement), so one at a time would mostly wait on disks.
ROUND_ROBIN_IN_FLIGHT = 3


@dataclass(frozen=True)
class DeployOptions:
    """What the user asked for (runbooks/deploy.py's options)."""

    config: Path | str | None = None
    groups: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    dry_run: bool = False
    requests: int = 0  # 0: 3 per web server
    vip_wait: float = 10.0


@dataclass
class CheckLine:
    """One end-to-end check: passed or not, and its line."""

    ok: bool
    line: str


@dataclass
class DeployOutcome:
    """Everything the runbook prints: host reports, the checks' lines and the JSON extras."""

    mode: str
    reports: list[HostReport]
    results: AggregatedResult
    checks: dict[str, Any] = field(default_factory=dict)
    lines: list[CheckLine] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.reports if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and all(c.ok for c in self.lines)


def deploy_stack(options: DeployOptions, console: Console) -> DeployOutcome:
    """Deploy the targeted hosts, then check the stack end to end (not under dry-run).

    Raises ProjectError (exit 2: bad inventory or unknown names; 3: the lab is not ready).
    """
    started = time.monotonic()
    settings = load_settings(options.config)
    # Every host (rendering needs the whole inventory); names checked before the lab (exit 2).
    nr = build_nornir(settings, check_lab=False)
    run = select_hosts(nr, options.groups, options.hosts)
    check_selection(nr, run, options)
    ensure_reachable(nr, settings)
    nr.data.dry_run = options.dry_run
    db = for_run(DbTarget.from_settings(settings))
    try:
        outcome = _deploy_hosts(nr, run, db, console)
        outcome.checks["deploy_seconds"] = round(time.monotonic() - started, 3)
        if not options.dry_run:
            end_to_end(nr, run, settings, outcome, options, db)
        outcome.checks["db_admin_connections"] = db.links.opened if db.links else 0
    finally:
        nr.close_connections(on_good=True, on_failed=True)
        db.close_links()
    outcome.checks["total_seconds"] = round(time.monotonic() - started, 3)
    return outcome


def check_selection(nr: Nornir, run: Nornir, options: DeployOptions) -> None:
    """Refuse a selection of no host (ProjectError, exit 2), e.g. `--group rp --host web1`,
    naming the options and the tier of each host asked for."""
    if run.inventory.hosts:
        return
    asked = " ".join([f"--group {g}" for g in options.groups]
                     + [f"--host {h}" for h in options.hosts])
    tiers = [f"{h} is in group {tier_of(nr.inventory.hosts[h])}" for h in options.hosts]
    why = f" ({'; '.join(dict.fromkeys(tiers))})" if tiers else ""
    raise ProjectError(f"{asked or 'the inventory'} selects no host{why}; nothing done", 2)


def _deploy_hosts(nr: Nornir, run: Nornir, db: DbTarget, console: Console) -> DeployOutcome:
    names = list(run.inventory.hosts)
    mode = "dry run" if nr.data.dry_run else "deploy"
    gate = TierGate(Counter(tier_of(h) for h in run.inventory.hosts.values()))
    stack = Stack(nr.inventory, db, gate)
    console.print(f"{mode}: {len(names)} host(s) in parallel: {' '.join(names)}")
    # Hosts wait for earlier tiers inside the runner: every host needs its own worker, or
    # web hosts holding all the workers would wait forever for a db host never started.
    workers = max(run.runner.num_workers, len(names))
    deploying = run.with_processors([Progress(console)]).with_runner(ThreadedRunner(workers))
    results = deploying.run(task=deploy_host, stack=stack)
    reports = [report_of(run.inventory.hosts[h], results[h]) for h in names]
    return DeployOutcome(mode, reports, results, {"dry_run": bool(nr.data.dry_run)})


def end_to_end(nr: Nornir, run: Nornir, settings: Settings, outcome: DeployOutcome,
               options: DeployOptions, db: DbTarget) -> None:
    """The checks of the tiers deployed: the database (db), the VIP and the round-robin
    through it (web or rp). Each adds its line and its part of the JSON to `outcome`. The
    database check (SQL to the db nodes) runs beside the others (SSH and HTTP to the proxies):
    the deploy waits for the longer, not for both; its line still comes first."""
    tiers = {r.tier for r in outcome.reports}
    with ThreadPoolExecutor(max_workers=1) as pool:
        database = pool.submit(database_check, nr, run, db, outcome) \
            if "db" in tiers else None
        web_lines: list[CheckLine] = []
        if {"web", "rp"} & tiers and tier_hosts(nr.inventory, "rp"):
            web_lines = web_checks(nr, settings, outcome, options, "rp" in tiers)
    db_lines = [database.result()] if database is not None else []
    outcome.lines.extend(db_lines + web_lines)


def web_checks(nr: Nornir, settings: Settings, outcome: DeployOutcome, options: DeployOptions,
               proxies_deployed: bool) -> list[CheckLine]:
    """The VIP, then the round-robin through it (not tried when no proxy holds the VIP)."""
    vip_line, held = vip_check(nr, outcome, options.vip_wait)
    if held:
        return [vip_line, round_robin_check(nr, settings, outcome, options.requests,
                                            proxies_deployed)]
    outcome.checks["round_robin"] = {"ok": False, "skipped": "no proxy holds the VIP"}
    return [vip_line, CheckLine(False, f"round-robin through {vip(nr.inventory)}: not tried "
                                       "(no proxy holds the VIP)")]


def database_check(nr: Nornir, run: Nornir, db: DbTarget, outcome: DeployOutcome) -> CheckLine:
    """The README's database check on the deployed db hosts: a marker row written on the
    primary is read on each replica, and a write on the replica is refused."""
    started = time.monotonic()
    failed = set(outcome.failed)
    names = [h.name for h in tier_hosts(run.inventory, "db") if h.name not in failed]
    results = nr.filter(F(name__any=names)).run(
        task=verify_db, target=db, inventory=nr.inventory)
    seen, errors = {}, {}
    for name in names:
        multi = results[name]
        if multi.failed:
            errors[name] = describe_error(multi[0].exception or RuntimeError(multi[0].result))
        else:
            seen[name] = multi[0].result
    skipped = sorted(failed & {h.name for h in tier_hosts(run.inventory, "db")})
    ok = not errors and not skipped
    outcome.checks["database"] = {"ok": ok, "hosts": seen, "errors": errors,
                                  "skipped": skipped,
                                  "seconds": round(time.monotonic() - started, 3)}
    return CheckLine(ok, database_line(seen, errors, skipped))


def database_line(seen: dict[str, dict], errors: dict[str, str], skipped: list[str]) -> str:
    """The database check in one line (pure)."""
    parts = []
    for name, data in sorted(seen.items()):
        if data["role"] == "replica":
            parts.append(f"{name} read the marker after {data['marker_delay_s'] * 1000:.1f} ms "
                         f"and refused a write ({data['write_refused']})")
        else:
            note = f" (note: {data['note']})" if data.get("note") else ""
            parts.append(f"{name} primary writable, binlog at {data['gtid_binlog_pos']}{note}")
    parts += [f"{name}: {error}" for name, error in sorted(errors.items())]
    parts += [f"{name}: not checked (its deploy failed)" for name in skipped]
    return "database: " + "; ".join(parts)


def vip_check(nr: Nornir, outcome: DeployOutcome, timeout: float) -> tuple[CheckLine, bool]:
    """The VIP on the expected MASTER alone (any single holder without preemption), and
    whether any proxy holds it (False: nothing to send requests to)."""
    proxies = tier_hosts(nr.inventory, "rp")
    master = expected_master(nr.inventory)
    address = str(vip(nr.inventory))
    known = {r.name: r.addresses for r in outcome.reports if r.tier == "rp" and r.addresses}
    rp = nr.filter(F(name__any=[h.name for h in proxies]))
    check = wait_for_vip(rp, address, master, timeout, known=known)
    outcome.checks["vip"] = {"ok": check.ok, "holders": check.holders, "master": master,
                             "waited": round(check.waited, 3)}
    return CheckLine(check.ok, check.describe()), bool(check.holders)


def expected_servers(nr: Nornir, reports: list[HostReport]) -> tuple[list[str], list[str]]:
    """The web servers that must answer through the VIP (every one whose deploy did not
    fail) and those that may (a failed one may still serve its previous config)."""
    failed = {r.name for r in reports if r.status == "failed"}
    webs = tier_hosts(nr.inventory, "web")
    allowed = [f"{h.name}.{h['domain']}" for h in webs]
    expected = [f"{h.name}.{h['domain']}" for h in webs if h.name not in failed]
    return expected, allowed


def round_robin_hint(errors: list[str], missing: list[str], proxies_in_run: bool,
                     fail_timeout: str) -> str:
    """Words for a round-robin that missed web servers or got 502s (pure): which servers
    never answered, and when the proxies were not part of the run, that NGINX may still
    hold failure marks set while the web servers were not up."""
    words = f"; never answered: {', '.join(missing)}" if missing else ""
    if "HTTP 502" in errors:
        words += "; 502: the proxies found no live web server"
    if words and not proxies_in_run:
        words += (f" (NGINX keeps a web server that failed a request marked failed for "
                  f"{fail_timeout}; a deploy with --group rp, or without --group/--host, "
                  "starts the proxies afresh)")
    return words


def round_robin_check(nr: Nornir, settings: Settings, outcome: DeployOutcome,
                      requests: int, proxies_in_run: bool = True) -> CheckLine:
    """`requests` GETs through the VIP (default 3 per web server) cover the web tier."""
    address = str(vip(nr.inventory))
    expected, allowed = expected_servers(nr, outcome.reports)
    count = requests or 3 * max(1, len(expected))
    started = time.monotonic()
    rr = check_round_robin(address, count, settings.lab_bridge if settings.is_lab else None,
                           in_flight=ROUND_ROBIN_IN_FLIGHT)
    ok = rr.covers(expected, allowed=allowed)
    outcome.checks["round_robin"] = {"ok": ok, "requests": count, "counts": rr.counts,
                                     "errors": rr.errors[:10],
                                     "seconds": round(time.monotonic() - started, 3)}
    dist = "  ".join(f"{name}: {n}" for name, n in rr.counts.items()) or "no answer"
    errors = f" ({len(rr.errors)} error(s): {rr.errors[0]})" if rr.errors else ""
    missing = [name for name in expected if name not in rr.counts]
    proxy = tier_hosts(nr.inventory, "rp")[0]
    hint = round_robin_hint(rr.errors, missing, proxies_in_run,
                            str(proxy.get("lb_fail_timeout", "")))
    return CheckLine(ok, f"round-robin through {address}, {count} requests: "
                         f"{dist}{errors}{hint}")
