"""Checks after a deploy: a script per host plus a pure parser, then the cross-host checks.

- `host_check_script(tier, ...)` (shell), `parse_check_output` (pure) and `problems`: on a web
  node, apache2 runs and answers 200 on the node's address with its own `X-Served-By`; on a
  proxy, nginx and keepalived run, nginx answers on the node's address, and the addresses of
  eth0 are listed. The db tier is checked with SQL (tasks/db/verify.py).
- `wait_for_vip`: exactly one proxy holds the VIP and it is the inventory's MASTER, polled for
  a bounded time (the election after a first deploy).
- `check_round_robin`: N requests through the VIP from this machine (tasks.core.probe), and
  the distribution of `X-Served-By`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

from nornir.core import Nornir
from nornir.core.task import Result, Task

from tasks.core.probe import http_probe
from tasks.core.remote import run_command

MARK = "@@tp5 "


def host_check_script(tier: str, address: str, port: int = 80, interface: str = "eth0") -> str:
    """The shell script that collects what `parse_check_output` needs on a host of `tier`."""
    daemons = {"web": ["apache2"], "rp": ["nginx", "keepalived"]}.get(tier, [])
    lines = [f'if pidof {d} >/dev/null; then echo "{MARK}up {d}"; else echo "{MARK}down {d}"; fi'
             for d in daemons]
    if tier in ("web", "rp"):
        lines.append(f'echo "{MARK}http"; curl -s -m 3 -o /dev/null -D - '
                     f'http://{address}:{port}/; echo "{MARK}curl $?"')
    if tier == "rp":
        lines.append(f'echo "{MARK}addr"; ip -br addr show dev {interface}')
    return "\n".join(lines) + "\n"


@dataclass
class HostCheck:
    """What a host's check output says."""

    running: dict[str, bool] = field(default_factory=dict)
    http_status: int | None = None
    served_by: str = ""
    curl_rc: int | None = None
    addresses: list[str] = field(default_factory=list)


def parse_ip_br(output: str) -> list[str]:
    """Addresses (without prefix) in `ip -br addr` output."""
    found = []
    for line in output.splitlines():
        for token in line.split()[2:]:
            found.append(token.split("/")[0])
    return found


def parse_check_output(output: str) -> HostCheck:
    """Split `host_check_script` output into its sections (pure)."""
    check, section, body = HostCheck(), "", []
    for line in output.splitlines() + [MARK + "end"]:
        if not line.startswith(MARK):
            body.append(line)
            continue
        if section == "http":
            status = next((ln for ln in body if ln.startswith("HTTP/")), "")
            match = re.match(r"HTTP/\S+ (\d{3})", status)
            check.http_status = int(match.group(1)) if match else None
            for ln in body:
                if ln.lower().startswith("x-served-by:"):
                    check.served_by = ln.split(":", 1)[1].strip()
        elif section == "addr":
            check.addresses = parse_ip_br("\n".join(body))
        word = line[len(MARK):].split()
        section, body = word[0], []
        if word[0] in ("up", "down"):
            check.running[word[1]] = word[0] == "up"
        elif word[0] == "curl":
            check.curl_rc = int(word[1])
    return check


def problems(tier: str, check: HostCheck, expect_served_by: str = "") -> list[str]:
    """What is wrong with a host according to its parsed check (empty: healthy)."""
    found = [f"{d} is not running" for d, up in check.running.items() if not up]
    if tier in ("web", "rp"):
        if check.http_status is None:
            found.append(f"no HTTP answer on the node's address (curl exit {check.curl_rc})")
        elif check.http_status != 200:
            found.append(f"HTTP {check.http_status} on the node's address")
    if tier == "web" and check.http_status == 200 and check.served_by != expect_served_by:
        found.append(f"X-Served-By is {check.served_by!r}, expected {expect_served_by!r}")
    return found


def vip_holders(addresses: dict[str, list[str]], vip: str) -> list[str]:
    """The hosts whose address list holds `vip`, sorted."""
    return sorted(name for name, addrs in addresses.items() if vip in addrs)


def read_addresses(task: Task, interface: str = "eth0") -> Result:
    """Result.result: the addresses on the host's `interface`."""
    out = run_command(task, f"ip -br addr show dev {interface}", timeout=5)
    return Result(host=task.host, result=parse_ip_br(out.stdout))


@dataclass
class VipCheck:
    """Who holds the VIP. `master` None: any single holder will do (vrrp_preempt false:
    after a failover the VIP rightly stays where it went)."""

    vip: str
    master: str | None
    holders: list[str]
    waited: float
    unreachable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.holders) == 1 and self.master in (None, self.holders[0])

    def describe(self) -> str:
        if self.ok:
            whose = ("the inventory's MASTER" if self.master
                     else "no preemption: wherever the last election put it")
            return f"VIP {self.vip} on {self.holders[0]} ({whose}), only there"
        held = ", ".join(self.holders) or "no proxy"
        lost = f"; unreachable: {', '.join(self.unreachable)}" if self.unreachable else ""
        return (f"VIP {self.vip} held by {held} after {self.waited:.1f} s, expected "
                f"{self.master or 'one proxy'} alone{lost}")


def wait_for_vip(proxies: Nornir, vip: str, master: str | None, timeout: float = 10.0,
                 interval: float = 0.2, known: dict[str, list[str]] | None = None) -> VipCheck:
    """Poll the proxies' eth0 until `master` alone holds `vip`, at most `timeout` seconds.

    `known`: addresses just read from every proxy (the deploy's own check); when they
    already show `master` alone holding the VIP, no round trip is made.
    """
    started = time.monotonic()
    if known is not None and set(known) == set(proxies.inventory.hosts):
        check = VipCheck(vip, master, vip_holders(known, vip), 0.0)
        if check.ok:
            return check
    while True:
        results = proxies.run(task=read_addresses)
        addresses = {h: r[0].result for h, r in results.items() if not r.failed}
        check = VipCheck(vip, master, vip_holders(addresses, vip), time.monotonic() - started,
                         sorted(h for h, r in results.items() if r.failed))
        if check.ok or check.waited >= timeout:
            return check
        time.sleep(interval)


@dataclass
class RoundRobin:
    """Who answered N requests through the VIP, in order, and what went wrong."""

    order: list[str]
    errors: list[str]

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.order).items()))

    def covers(self, expected: list[str], allowed: list[str] | None = None) -> bool:
        """No error, every expected server answered, and nobody outside `allowed` did
        (a web host whose deploy failed may still serve its previous config)."""
        seen = set(self.order)
        return (not self.errors and set(expected) <= seen
                and seen <= set(allowed if allowed is not None else expected))


def check_round_robin(vip: str, n: int, bridge: str | None = None, port: int = 80,
                      timeout: float = 3.0) -> RoundRobin:
    """Send `n` GETs to the VIP (new connection each) and record `X-Served-By` (bounded).

    With `bridge` (lab mode), refuse unless the VIP is routed through the lab bridge.
    """
    if bridge is not None:
        from tasks.core.guard import LabNotReady, check_addresses

        refused = check_addresses(bridge, [vip])
        if refused:
            raise LabNotReady("; ".join(refused))
    order, errors = [], []
    for _ in range(n):
        record = http_probe(vip, timeout, port=port)
        if record.ok and record.server:
            order.append(record.server)
        else:
            errors.append(record.error or "no answer")
    return RoundRobin(order, errors)
