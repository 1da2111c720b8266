"""Deploy one host of any tier: render, read once, push per service, converge, verify.

``deploy_host`` is the one per-host task (db, web and rp alike; the order between tiers is
``tasks.deploy.order``). Each step is a subtask, so each is a Result that the processors see
and that ``print_result`` shows: ``plan_host`` renders every file, ``read_host_state`` reads
every file of every service, which daemons run and the host's check in one SSH round trip,
``push_files`` pushes each service's files (diff; nothing touched when equal; else back up,
swap, check, then reload or put everything back), ``start_service`` starts a daemon that
should run but does not (a rebooted node), the db tier's SQL steps follow
(``tasks.db.deploy.converge_database``), and ``check_host`` / ``check_db_node`` verify the
host (not under Nornir's dry-run). A proxy is checked once the web and db hosts of the run are
done, changed or not; when web servers came up since its first read, or it answers 502
while they answer it directly, ``reload_service`` starts its NGINX afresh (new workers, no
stale failure marks) before the check. The task's own Result has ``changed``, the whole
``diff`` and a ``HostReport`` with the same timing keys for every tier: render, connect,
read, wait, apply:<service>, start, sql, verify.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nornir.core.inventory import Inventory
from nornir.core.task import Result, Task

from tasks.core.connection import CONNECTION
from tasks.core.inventory import fqdn, tier_of
from tasks.core.remote import check_command, run_command
from tasks.db.deploy import converge_database
from tasks.db.sql import DbTarget
from tasks.db.verify import check_db_node
from tasks.deploy.checks import (
    fresh_start_reason,
    host_check_script,
    nginx_seconds,
    parse_check_output,
    problems,
)
from tasks.deploy.errors import describe_error
from tasks.deploy.files import NGINX_FRESH_START
from tasks.deploy.order import CHECK_WAIT, TierGate, prerequisites, verify_after
from tasks.deploy.plan import HostState, ServicePlan, plan_host, read_host_state, service_needed
from tasks.deploy.push import CurrentFile, push_files
from tasks.deploy.render import web_servers
from tasks.deploy.report import DeployFailed, HostReport

# How a running service is reloaded; NGINX's returns once its new workers serve.
RELOAD = {"nginx": NGINX_FRESH_START}


@dataclass(frozen=True)
class Stack:
    """What every host's deploy shares: the whole inventory (the run may be filtered), the
    database access (``db.is_lab``: lab or real machines, from the Settings) and the gate
    that orders the tiers."""

    inventory: Inventory
    db: DbTarget
    gate: TierGate

    @property
    def is_lab(self) -> bool:
        return self.db.is_lab


@contextmanager
def timed(report: HostReport, phase: str) -> Iterator[None]:
    """Add the seconds spent in the block to ``report.timings[phase]``."""
    started = time.monotonic()
    try:
        yield
    finally:
        report.timings[phase] = round(report.timings.get(phase, 0.0)
                                      + time.monotonic() - started, 4)


def check_script(task: Task, inventory: Inventory) -> str:
    """The shell part of the host's check (none for the db tier, checked with SQL); a proxy
    also asks each web server of `inventory` directly."""
    host = task.host
    tier = tier_of(host)
    if tier == "db":
        return ""
    port = int(host.get("http_port", 80)) if tier == "web" else 80
    if tier == "web":
        return host_check_script(tier, str(host.hostname), port)
    upstreams = [(w["name"], str(w["address"]), int(w["port"])) for w in web_servers(inventory)]
    return host_check_script(tier, str(host.hostname), port,
                             str(host.get("vrrp_interface", "eth0")), upstreams,
                             f"/var/log/nginx/{host['app_name']}_access.log",
                             nginx_seconds(str(host.get("lb_fail_timeout", "10s"))))


def start_service(task: Task, service: str) -> Result:
    """Nornir task: start a service whose daemon does not run (not under dry-run)."""
    if not task.is_dry_run():
        check_command(task, f"service {shlex.quote(service)} start", timeout=90)
    return Result(host=task.host, changed=True, result=f"started {service}")


def reload_service(task: Task, service: str, reason: str) -> Result:
    """Nornir task: reload a running service (not under dry-run); NGINX's reload returns
    once its new workers serve."""
    if not task.is_dry_run():
        check_command(task, RELOAD.get(service, f"service {shlex.quote(service)} reload"),
                      timeout=60)
    return Result(host=task.host, changed=True, result=f"reloaded {service}: {reason}")


def read_check(task: Task, inventory: Inventory) -> str:
    """Run the host's check script now; its output."""
    return run_command(task, check_script(task, inventory), timeout=15).stdout


def check_host(task: Task, inventory: Inventory, output: str | None = None,
               hint: str = "") -> Result:
    """Nornir task: check a web or proxy host (or parse `output` of its check, already run);
    raise on a problem. `hint`: what to do when a proxy's web tier does not answer.
    Result.result: the HostCheck."""
    host = task.host
    if output is None:
        output = read_check(task, inventory)
    check = parse_check_output(output)
    found = problems(tier_of(host), check, f"{fqdn(host)} {host.hostname}", hint)
    if found:
        raise RuntimeError(f"verify: {'; '.join(found)}")
    return Result(host=host, result=check)


def deploy_host(task: Task, stack: Stack) -> Result:
    """Nornir task: converge the host, then verify it (not under dry-run).

    Result: ``changed``, ``diff`` (every file and database change), result = HostReport.
    Raises DeployFailed (with the report so far) on any failure.
    """
    host = task.host
    report = HostReport(host.name, tier_of(host), "unchanged")
    started = time.monotonic()
    try:
        _deploy(task, stack, report)
    except Exception as exc:
        report.status, report.error = "failed", describe_error(exc, host)
        raise DeployFailed(report) from exc
    finally:
        if report.status != "failed" and (report.files or report.started or report.actions):
            report.status = "changed"
        stack.gate.finished(report.tier, changed=report.status != "unchanged")
        report.seconds = time.monotonic() - started
    return Result(host=host, changed=report.status == "changed", diff=report.diff,
                  result=report)


def _deploy(task: Task, stack: Stack, report: HostReport) -> None:
    host = task.host
    with timed(report, "render"):
        plans = task.run(task=plan_host, inventory=stack.inventory, is_lab=stack.is_lab,
                         db=stack.db)[0].result
    with timed(report, "connect"):
        host.get_connection(CONNECTION, task.nornir.config)
    with timed(report, "read"):
        state: HostState = task.run(task=read_host_state, plans=plans,
                                    check_script=check_script(task, stack.inventory))[0].result
    for plan, current in zip(plans, state.files, strict=True):
        _apply(task, stack, report, plan, current, state.running)
    if report.tier == "db":
        with timed(report, "sql"):
            _converge_database(task, stack, report, state.running.get("mariadbd", False))
    if not task.is_dry_run():
        _verify(task, stack, report, state)


def _apply(task: Task, stack: Stack, report: HostReport, plan: ServicePlan,
           current: list[CurrentFile], running: dict[str, bool]) -> None:
    """Push one service's files, or start its daemon (after the tiers it needs)."""
    up = bool(plan.daemon and running.get(plan.daemon))
    if not service_needed(plan, current, running):
        return
    if not task.is_dry_run():
        waited = stack.gate.wait_for(prerequisites(report.tier, plan.service, up))
        report.timings["wait"] = round(report.timings.get("wait", 0.0) + waited, 4)
    with timed(report, f"apply:{plan.service}"):
        pushed = task.run(task=push_files, name=f"push {plan.service}", files=plan.files,
                          validate=plan.validate, reload=plan.reload, current=current)[0]
    report.files += pushed.result["files"]
    report.diff += pushed.diff or ""
    if plan.daemon and not up and not pushed.changed:
        with timed(report, "start"):
            task.run(task=start_service, name=f"start {plan.service}", service=plan.service)
        report.started.append(plan.service)


def _converge_database(task: Task, stack: Stack, report: HostReport, running: bool) -> None:
    for step in converge_database(task, stack.db, stack.inventory, running):
        report.actions += step.result
        report.diff += step.diff or ""
        waited = getattr(step, "waited", 0.0)
        if waited:
            report.timings["wait"] = round(report.timings.get("wait", 0.0) + waited, 4)


def _verify(task: Task, stack: Stack, report: HostReport, state: HostState) -> None:
    """Check the host once the tiers it answers through are done (changed or not)."""
    after = verify_after(report.tier)
    with timed(report, "wait"):
        stack.gate.wait_for(after, CHECK_WAIT)
    if report.tier == "db":
        # Always: a db node that is wrong for its role (a writable replica) fails as a host.
        with timed(report, "verify"):
            task.run(task=check_db_node, target=stack.db, inventory=stack.inventory)
        return
    # Nothing changed here nor in the tiers it depends on: the state read is the state now.
    fresh = bool(report.files or report.started or report.actions) or stack.gate.changed(after)
    output = None if fresh else state.check_output
    with timed(report, "verify"):
        if report.tier == "rp":
            output = _start_afresh(task, stack, report, state.check_output, output)
        check = task.run(task=check_host, inventory=stack.inventory, output=output,
                         hint=_missing_hint(stack, after))
    report.addresses = check[0].result.addresses


def _start_afresh(task: Task, stack: Stack, report: HostReport, before: str,
                  output: str | None) -> str | None:
    """Reload a proxy's NGINX when its failure marks are stale (``fresh_start_reason``);
    the check output to use then (None: check again)."""
    now = output if output is not None else read_check(task, stack.inventory)
    reason = fresh_start_reason(parse_check_output(before), parse_check_output(now))
    if not reason:
        return now
    task.run(task=reload_service, name="reload nginx", service="nginx", reason=reason)
    report.actions.append(f"reloaded nginx ({reason})")
    return None


def _missing_hint(stack: Stack, tiers: tuple[str, ...]) -> str:
    """What to do when the web tier does not answer a proxy: deploy it when it is not in
    the run."""
    if "web" in tiers and not stack.gate.present("web"):
        return ": deploy it first, or run without --group/--host"
    return ""
