"""What each lab node looks like from outside (kernel) and inside (over SSH)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nornir.core.task import Result, Task

from tasks.core.remote import run_command
from tp5lab.control import Lab

KNOWN_SERVICES = ("sshd", "nginx", "keepalived", "apache2", "mariadbd")


@dataclass
class NodeStatus:
    name: str
    address: str
    pid1: int | None
    link_up: bool
    ssh_ok: bool = False
    hostname: str = ""
    services: list[str] = field(default_factory=list)
    error: str = ""


def parse_services(ps_output: str) -> list[str]:
    """Known daemons present in `ps -e -o comm=` output, in a fixed order."""
    names = {line.strip() for line in ps_output.splitlines()}
    return [s for s in KNOWN_SERVICES if s in names]


def probe_node(task: Task) -> Result:
    """Connect over SSH and read the node's hostname and running daemons."""
    res = run_command(task, "hostname; ps -e -o comm=", timeout=10)
    lines = res.stdout.splitlines()
    return Result(host=task.host, result={"hostname": lines[0] if lines else "",
                                          "services": parse_services("\n".join(lines[1:]))})


def short_reason(exc: BaseException | None) -> str:
    """First line of an exception's message, for a table cell."""
    if exc is None:
        return "failed"
    text = str(exc).strip().splitlines()
    return text[0][:60] if text else type(exc).__name__


def collect_status(lab: Lab, config: str | None) -> list[NodeStatus]:
    """Kernel state of every node plus, for running nodes, what SSH shows."""
    from tasks.core.nornir_build import build_nornir

    rows = {s.node.name: NodeStatus(s.node.name, s.node.address, s.pid1, s.link_up)
            for s in lab.states()}
    nr = build_nornir(config, check_lab=True)
    results = nr.run(task=probe_node)
    for name, multi in results.items():
        row = rows[name]
        if multi.failed:
            exc = multi[0].exception
            row.error = short_reason(exc)
        else:
            row.ssh_ok = True
            row.hostname = multi[0].result["hostname"]
            row.services = multi[0].result["services"]
    nr.close_connections()
    return list(rows.values())
