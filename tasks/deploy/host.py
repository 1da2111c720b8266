"""Deploy one host of the web or proxy tier: render, read once, push per service, verify.

`deploy_host` reads every file of every service of the host and which daemons run in one
SSH round trip, then pushes each service's files with `push_files` (diff; nothing touched
when equal; else back up, swap, check, then reload or put everything back), starts a daemon
that should run but does not (a rebooted node), and checks the host (`tasks.verify`).
`deploy_node` dispatches per tier, the db tier to `tasks.db_deploy`,
and orders the tiers (db, then web, then rp) with a `TierGate` while every host still runs
in parallel.
"""

from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from nornir.core.inventory import Host, Inventory
from nornir.core.task import Result, Task

from tasks.core import remote
from tasks.core.connection import CONNECTION
from tasks.core.inventory import fqdn, tier_of
from tasks.core.remote import RemoteCommandError, run_command
from tasks.db.deploy import app_db_settings, deploy_db
from tasks.deploy.checks import HostCheck, check_command, parse_check_output, problems
from tasks.deploy.files import PHP_CHECK, by_service, host_files
from tasks.deploy.push import DesiredFile, diff_file, parse_read, push_files, read_script
from tasks.deploy.render import host_context, render_template

TIER_ORDER: tuple[str, ...] = ("db", "web", "rp")
DAEMONS = {"apache2": "apache2", "nginx": "nginx", "keepalived": "keepalived"}
BOOT_SCRIPT = "/etc/tp5lab/boot"



class DeployFailed(Exception):
    """A host failed; `timings` holds the phases measured until then."""

    def __init__(self, message: str, timings: dict[str, float]) -> None:
        super().__init__(message)
        self.timings = timings


@dataclass(frozen=True)
class ServicePlan:
    """The desired files of one service on one host, with its checker, reload and daemon."""

    service: str
    files: list[DesiredFile]
    validate: str | None
    reload: str | None
    daemon: str | None


class TierGate:
    """Lets a host apply only once every host of the earlier tiers has finished."""

    def __init__(self, hosts_per_tier: dict[str, int], order: tuple[str, ...] = TIER_ORDER):
        self.order = order
        self._left = {t: hosts_per_tier.get(t, 0) for t in order}
        self._done = {t: threading.Event() for t in order}
        self._lock = threading.Lock()
        for tier, left in self._left.items():
            if left == 0:
                self._done[tier].set()

    def wait(self, tier: str, timeout: float = 600.0) -> float:
        """Block until the tiers before `tier` are done; return the seconds waited."""
        return self.wait_for(self.order[: self.order.index(tier)], timeout)

    def wait_for(self, tiers: tuple[str, ...], timeout: float = 600.0) -> float:
        """Block until every host of `tiers` is done; return the seconds waited."""
        started = time.monotonic()
        for tier in tiers:
            if not self._done[tier].wait(max(0.0, timeout - (time.monotonic() - started))):
                raise TimeoutError(f"the {tier} tier did not finish within {timeout:.0f} s; "
                                   "nothing applied out of order")
        return time.monotonic() - started

    def finished(self, tier: str) -> None:
        with self._lock:
            self._left[tier] -= 1
            if self._left[tier] <= 0:
                self._done[tier].set()


def prerequisites(tier: str, service: str) -> tuple[str, ...]:
    """Tiers to finish before a service's files go live: a web node's Apache needs nothing,
    its DB settings need the db tier; a proxy needs every tier before it."""
    if tier == "web":
        return ("db",) if service == "app" else ()
    return TIER_ORDER[: TIER_ORDER.index(tier)]


def boot_script(services: list[str]) -> str:
    """The lab node's boot script: start the host's services, like enabled units on a VM."""
    lines = ["#!/bin/sh", "# Managed by tp5ha (tasks/deploy_tier.py): run by the lab node at boot."]
    lines += [f"service {s} start" for s in services]
    return "\n".join(lines) + "\n"


def plan_host(host: Host, inventory: Inventory, lab_mode: bool,
              extra: list[DesiredFile] | None = None) -> list[ServicePlan]:
    """Every service's desired files on `host`, rendered from the inventory (pure)."""
    context = host_context(host, inventory)
    plans = []
    for group in by_service(host_files(host)):
        files = []
        for spec in group.files:
            if spec.state == "file":
                content = render_template(str(spec.template), **context)
                files.append(DesiredFile(spec.path, content, spec.mode, spec.owner))
            elif spec.state == "link":
                files.append(DesiredFile(spec.path, state="link", link_target=str(spec.target)))
            else:
                files.append(DesiredFile(spec.path, state="absent"))
        plans.append(ServicePlan(group.service, files, group.validate_cmd, group.reload_cmd,
                                 DAEMONS.get(group.service)))
    for desired in extra or []:
        check = PHP_CHECK.replace("{candidate}", desired.path) if desired.path.endswith(
            ".php") else None
        plans.append(ServicePlan("app", [desired], check, None, None))
    daemons = [p.daemon for p in plans if p.daemon]
    if lab_mode and daemons:
        boot = DesiredFile(BOOT_SCRIPT, boot_script(daemons), mode="0755")
        plans.append(ServicePlan("boot", [boot], None, None, None))
    return plans


def read_state_script(plans: list[ServicePlan]) -> str:
    """One script reading every planned file, then which planned daemons run."""
    paths = [f.path for p in plans for f in p.files]
    daemons = [p.daemon for p in plans if p.daemon]
    status = [f'if pidof {d} >/dev/null; then echo "up {d}"; else echo "down {d}"; fi'
              for d in daemons]
    return read_script(paths) + "echo @@daemons\n" + "\n".join(status) + "\n"


def parse_daemons(output: str) -> dict[str, bool]:
    """`up X` / `down X` lines -> {X: running} (pure)."""
    found = {}
    for line in output.splitlines():
        word = line.split()
        if len(word) == 2 and word[0] in ("up", "down"):
            found[word[1]] = word[0] == "up"
    return found


def _timed(timings: dict[str, float], phase: str, started: float) -> None:
    timings[phase] = round(timings.get(phase, 0.0) + time.monotonic() - started, 4)


def deploy_host(task: Task, inventory: Inventory, dry_run: bool = False, lab_mode: bool = True,
                gate: TierGate | None = None) -> Result:
    """Converge a web or proxy host, then verify it (not under dry-run).

    Result: `changed`, `diff` (every file), result = {"files": changed paths, "started":
    daemons started, "timings": seconds per phase (connect, render, read, wait, apply:<svc>,
    start, verify)}. Raises DeployFailed (with timings) on any failure.
    """
    timings: dict[str, float] = {}
    try:
        return _deploy_host(task, inventory, dry_run, lab_mode, gate, timings)
    except Exception as exc:
        raise DeployFailed(describe_error(exc, task.host), timings) from exc


def _deploy_host(task: Task, inventory: Inventory, dry_run: bool, lab_mode: bool,
                 gate: TierGate | None, timings: dict[str, float]) -> Result:
    host = task.host
    started = time.monotonic()
    extra = []
    if tier_of(host) == "web":
        target = task.nornir.config.user_defined.get("target", "lab")
        extra.append(app_db_settings(host, inventory, target=target))
    plans = plan_host(host, inventory, lab_mode, extra)
    _timed(timings, "render", started)
    started = time.monotonic()
    host.get_connection(CONNECTION, task.nornir.config)
    _timed(timings, "connect", started)
    started = time.monotonic()
    out = run_command(task, read_state_script(plans) + "echo @@verify\n" + verify_script(host))
    if not out.ok:
        raise RemoteCommandError(host.name, "read files", out, out.stderr.strip())
    files_part, _, rest = out.stdout.partition("@@daemons\n")
    daemons_part, _, verify_part = rest.partition("@@verify\n")
    paths = [f.path for p in plans for f in p.files]
    currents = parse_read(paths, files_part)
    running = parse_daemons(daemons_part)
    _timed(timings, "read", started)
    current = iter(currents)
    changed_files: list[str] = []
    diffs: list[str] = []
    started_daemons: list[str] = []
    for plan in plans:
        mine = [next(current) for _ in plan.files]
        needed = any(diff_file(c, d) for c, d in zip(mine, plan.files, strict=True)) or bool(
            plan.daemon and not running.get(plan.daemon))
        if gate is not None and needed and not dry_run:  # only what applies waits its turn
            waited = gate.wait_for(prerequisites(tier_of(host), plan.service))
            timings["wait"] = round(timings.get("wait", 0.0) + waited, 4)
        started = time.monotonic()
        res = push_files(task, plan.files, validate=plan.validate, reload=plan.reload,
                         dry_run=dry_run, current=mine)
        if res.changed:
            _timed(timings, f"apply:{plan.service}", started)
        changed_files += res.result["files"]
        diffs.append(res.diff)
        if plan.daemon and not running.get(plan.daemon, False) and not res.changed:
            started = time.monotonic()
            if not dry_run:
                remote.check_command(task, f"service {shlex.quote(plan.service)} start",
                                     timeout=60)
            started_daemons.append(plan.daemon)
            _timed(timings, "start", started)
    changed = bool(changed_files or started_daemons)
    check = None
    if not dry_run:
        started = time.monotonic()
        # Nothing applied: the state read before is the state now, no second round trip.
        check = verify_host(task, None if changed else verify_part)
        _timed(timings, "verify", started)
    return Result(host=host, changed=changed, diff="".join(diffs),
                  result={"files": changed_files, "started": started_daemons,
                          "timings": timings,
                          "addresses": check.addresses if check is not None else []})


def verify_script(host: Host) -> str:
    """The check command of the host's tier (see tasks.verify)."""
    tier = tier_of(host)
    port = int(host.get("http_port", 80)) if tier == "web" else 80
    return check_command(tier, str(host.hostname), port, str(host.get("vrrp_interface", "eth0")))


def verify_host(task: Task, output: str | None = None) -> HostCheck:
    """Check the host (or parse `output` of its check, already run); raise on a problem."""
    host = task.host
    if output is None:
        output = run_command(task, verify_script(host), timeout=15).stdout
    check = parse_check_output(output)
    found = problems(tier_of(host), check, f"{fqdn(host)} {host.hostname}")
    if found:
        raise RuntimeError(f"verify: {'; '.join(found)}")
    return check


def describe_error(exc: BaseException, host: Host) -> str:
    """One clear line (plus checker output, if any) for a failed host."""
    from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException
    from paramiko.ssh_exception import BadHostKeyException, SSHException

    extras = host.get_connection_parameters("netmiko").extras or {}
    message = str(exc)
    if isinstance(exc, BadHostKeyException) or "does not match" in message:
        return (f"refused: the SSH host key of {host.hostname} does not match the one pinned "
                f"in {extras.get('alt_key_file', 'known_hosts')} (not trusted blindly)")
    if "not found in known_hosts" in message:
        return (f"refused: {host.hostname} has no pinned host key in "
                f"{extras.get('alt_key_file', 'known_hosts')}")
    if isinstance(exc, NetmikoTimeoutException):
        return (f"unreachable: no SSH session with {host.hostname}:22 within "
                f"{extras.get('conn_timeout', '?')} s (host down, cable cut or filtered)")
    if isinstance(exc, NetmikoAuthenticationException):
        return f"SSH authentication refused by {host.hostname} (wrong key or user)"
    if isinstance(exc, SSHException):
        return f"SSH error with {host.hostname}: {str(exc).splitlines()[0] if str(exc) else exc}"
    text = str(exc).strip() or type(exc).__name__
    return text


@dataclass
class HostReport:
    """One host's line in the summary."""

    name: str
    tier: str
    status: str  # changed, unchanged, failed
    error: str = ""
    files: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    diff: str = ""
    addresses: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "status": self.status,
                "changed": self.status == "changed", "failed": self.status == "failed",
                "error": self.error or None, "files": self.files, "started": self.started,
                "timings": self.timings, "seconds": round(self.seconds, 3)}


def deploy_node(task: Task, inventory: Inventory, dry_run: bool = False, lab_mode: bool = True,
                gate: TierGate | None = None) -> Result:
    """Deploy any host: db through tasks.db_deploy (if present), web and rp here.

    Result.result is a HostReport; the host fails (exception) when its deploy failed.
    """
    tier = tier_of(task.host)
    started = time.monotonic()
    try:
        if tier == "db":
            return _db_node(task, dry_run, started)
        res = deploy_host(task, inventory, dry_run, lab_mode, gate)
        report = HostReport(task.host.name, tier, "changed" if res.changed else "unchanged",
                            files=res.result["files"], started=res.result["started"],
                            timings=res.result["timings"], diff=res.diff or "",
                            addresses=res.result["addresses"])
        report.seconds = time.monotonic() - started
        return Result(host=task.host, changed=res.changed, diff=res.diff, result=report)
    finally:
        if gate is not None:
            gate.finished(tier)


def _db_node(task: Task, dry_run: bool, started: float) -> Result:
    try:
        res = deploy_db(task, dry_run=dry_run)
    except Exception as exc:
        raise DeployFailed(describe_error(exc, task.host), {}) from exc
    timings = res.result.get("timings", {}) if isinstance(res.result, dict) else {}
    actions = res.result.get("actions", []) if isinstance(res.result, dict) else []
    report = HostReport(task.host.name, "db", "changed" if res.changed else "unchanged",
                        files=[str(a) for a in actions], timings=timings, diff=res.diff or "",
                        seconds=time.monotonic() - started)
    return Result(host=task.host, changed=res.changed, diff=res.diff, result=report)

