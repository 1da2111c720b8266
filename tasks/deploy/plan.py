"""What a host must hold, and what it holds now, in one SSH round trip.

``plan_host`` (Nornir task) renders every file of the host's services (``render_file``
subtasks) into ``ServicePlan``s, plus, in the lab, the node's boot script. ``read_host_state``
(Nornir task) reads every planned file, which daemons run and the output of the host's check
script in a single round trip, so a deploy with nothing to change reads each host once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nornir.core.inventory import Inventory
from nornir.core.task import Result, Task

from tasks.core import tls
from tasks.core.inventory import fqdn, tier_of
from tasks.core.remote import RemoteCommandError, run_command
from tasks.db.sql import DbTarget
from tasks.deploy.files import DAEMONS, FileSpec, by_service, host_files
from tasks.deploy.push import CurrentFile, DesiredFile, diff_file, parse_read, read_script
from tasks.deploy.render import host_context, render_file

BOOT_SCRIPT = "/etc/tp5lab/boot"


@dataclass(frozen=True)
class ServicePlan:
    """The desired files of one service on one host, with its checker, reload and daemon."""

    service: str
    files: list[DesiredFile]
    validate: str | None
    reload: str | None
    daemon: str | None


@dataclass(frozen=True)
class HostState:
    """What the read found: each plan's current files (same order), the daemons that run,
    and the output of the host's check script."""

    files: list[list[CurrentFile]]
    running: dict[str, bool]
    check_output: str


def boot_script(services: list[str]) -> str:
    """The lab node's boot script: start the host's services, like enabled units on a VM."""
    lines = ["#!/bin/sh",
             "# Managed by tp5ha (tasks/deploy/plan.py): run by the lab node at boot."]
    lines += [f"service {s} start" for s in services]
    return "\n".join(lines) + "\n"


class Generated:
    """The generated values templates may need (``FileSpec.inputs``), made on first use:
    the app's password (``db``'s secrets) and the db node's TLS PEMs (tasks.core.tls)."""

    def __init__(self, task: Task, db: DbTarget | None) -> None:
        self.task, self.db = task, db
        self._tls: tls.ServerTls | None = None

    def _server(self) -> tls.ServerTls:
        if self._tls is None:
            host = self.task.host
            self._tls = tls.ensure_server(host.name, str(host.hostname), (fqdn(host),))
        return self._tls

    def value(self, name: str) -> str:
        if name == "db_pass":
            if self.db is None:
                raise ValueError("the app's password needs the database target")
            return self.db.secrets.app
        pems = {"tls_ca": "ca_pem", "tls_cert": "cert_pem", "tls_key": "key_pem"}
        return str(getattr(self._server(), pems[name]))


def _desired(task: Task, spec: FileSpec, context: dict, generated: Generated) -> DesiredFile:
    if spec.state == "link":
        return DesiredFile(spec.path, state="link", link_target=str(spec.target))
    if spec.state == "absent":
        return DesiredFile(spec.path, state="absent")
    extra = {name: generated.value(name) for name in spec.inputs}
    rendered = task.run(task=render_file, name=f"render {spec.path}",
                        severity_level=logging.DEBUG, template=str(spec.template),
                        context={**context, **extra}, secret=spec.secret)
    return DesiredFile(spec.path, rendered[0].content, spec.mode, spec.owner,
                       secret=spec.secret)


def plan_host(task: Task, inventory: Inventory, is_lab: bool,
              db: DbTarget | None = None) -> Result:
    """Nornir task: every service's desired files on the host, rendered from the inventory.

    `inventory`: the whole inventory (the run may be filtered); `db`: where the database
    passwords come from (a web node's db.php) and whether the db nodes serve TLS (real
    machines: a db node's CA, certificate and key, generated on the controller);
    `is_lab`: add the lab node's boot script.
    Result.result: list[ServicePlan], in the order to apply them.
    """
    host = task.host
    tls_on = db is not None and db.tls and tier_of(host) == "db"
    context = host_context(host, inventory, tls_on)
    generated = Generated(task, db)
    plans = [ServicePlan(group.service,
                         [_desired(task, s, context, generated) for s in group.files],
                         group.validate_cmd, group.reload_cmd, DAEMONS.get(group.service))
             for group in by_service(host_files(host, tls_on))]
    daemons = [p.service for p in plans if p.daemon]
    if is_lab and daemons:
        boot = DesiredFile(BOOT_SCRIPT, boot_script(daemons), mode="0755")
        plans.append(ServicePlan("boot", [boot], None, None, None))
    return Result(host=host, result=plans)


def read_state_script(plans: list[ServicePlan], check_script: str = "") -> str:
    """One script reading every planned file, which planned daemons run, then the check."""
    paths = [f.path for p in plans for f in p.files]
    daemons = [p.daemon for p in plans if p.daemon]
    status = [f'if pidof {d} >/dev/null; then echo "up {d}"; else echo "down {d}"; fi'
              for d in daemons]
    return (read_script(paths) + "echo @@daemons\n" + "\n".join(status) + "\n"
            + "echo @@check\n" + check_script)


def parse_daemons(output: str) -> dict[str, bool]:
    """`up X` / `down X` lines -> {X: running} (pure)."""
    found = {}
    for line in output.splitlines():
        word = line.split()
        if len(word) == 2 and word[0] in ("up", "down"):
            found[word[1]] = word[0] == "up"
    return found


def parse_host_state(plans: list[ServicePlan], output: str) -> HostState:
    """Split the output of `read_state_script` (pure)."""
    files_part, _, rest = output.partition("@@daemons\n")
    daemons_part, _, check_part = rest.partition("@@check\n")
    current = iter(parse_read([f.path for p in plans for f in p.files], files_part))
    return HostState([[next(current) for _ in p.files] for p in plans],
                     parse_daemons(daemons_part), check_part)


def read_host_state(task: Task, plans: list[ServicePlan], check_script: str = "") -> Result:
    """Nornir task: read the host's state for `plans` in one round trip (HostState)."""
    out = run_command(task, read_state_script(plans, check_script))
    if not out.ok:
        raise RemoteCommandError(task.host.name, "read files", out, out.stderr.strip())
    return Result(host=task.host, result=parse_host_state(plans, out.stdout))


def service_needed(plan: ServicePlan, current: list[CurrentFile],
                   running: dict[str, bool]) -> bool:
    """True when a file differs or the service's daemon does not run."""
    differs = any(diff_file(c, d) for c, d in zip(current, plan.files, strict=True))
    return differs or bool(plan.daemon and not running.get(plan.daemon))
