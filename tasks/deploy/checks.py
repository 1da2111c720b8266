"""Checks after a deploy: a script per host plus a pure parser, then the cross-host checks.

- `host_check_script(tier, ...)` (shell), `parse_check_output` (pure) and `problems`: on a web
  node, apache2 runs and answers 200 on the node's address with its own `X-Served-By`; on a
  proxy, nginx and keepalived run, nginx answers on the node's address, the addresses of eth0
  are listed, and each web server is asked directly from the proxy (its upstreams), so that a
  502 is told apart: web tier not answering, or NGINX holding stale failure marks
  (`fresh_start_reason`). The db tier is checked with SQL (tasks/db/verify.py).
- `wait_for_vip`: exactly one proxy holds the VIP and it is the inventory's MASTER, polled for
  a bounded time (the election after a first deploy); no wait when no proxy runs Keepalived.
- `check_round_robin`: N requests through the VIP from this machine (tasks.core.probe), and
  the distribution of `X-Served-By`.
"""

from __future__ import annotations

import math
import re
import shlex
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nornir.core import Nornir
from nornir.core.task import Result, Task

from tasks.core.inventory import natural_key
from tasks.core.probe import ProbeRecord, http_probe
from tasks.core.remote import run_command

MARK = "@@tp5 "


Upstream = tuple[str, str, int]  # a web server seen from a proxy: name, address, port
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def nginx_seconds(value: str) -> float:
    """An NGINX time ("10s", "1m", "500ms", "30") in seconds (pure)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
    if not match:
        raise ValueError(f"not an NGINX time: {value!r}")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def upstream_probes(upstreams: Sequence[Upstream]) -> tuple[list[str], list[str]]:
    """Ask every web server directly, in parallel with the rest of the check (about a second
    at most): the lines that start the probes (each writes the HTTP code it got to a file of
    a temporary folder), and the lines that wait for them and print `upstream NAME
    ADDRESS:PORT CODE` (000 when it does not answer), after the other sections."""
    if not upstreams:
        return [], []
    start = ["probes=$(mktemp -d)"]
    start += [f"curl -s -m 2 --connect-timeout 1 -o /dev/null -w '%{{http_code}}' "
              f'http://{address}:{port}/ > "$probes/{i}" 2>/dev/null &'
              for i, (_, address, port) in enumerate(upstreams)]
    report = ["wait"]
    report += [f'echo "{MARK}upstream {shlex.quote(name)} {address}:{port} '
               f'$(cat "$probes/{i}" 2>/dev/null)"'
               for i, (name, address, port) in enumerate(upstreams)]
    return start, report + ['rm -rf "$probes"']


def recent_requests(log: str, seconds: float, limit: int = 50) -> str:
    """Print the access log's lines of the last `seconds` (its first field is $msec) since
    NGINX's workers started, at most `limit`: the window in which NGINX may still hold a
    web server marked failed (a reload starts with no marks)."""
    window = math.ceil(seconds) + 1
    return (f'echo "{MARK}recent"; '
            'age=$(ps -o etimes=,args= --ppid "$(cat /run/nginx.pid 2>/dev/null)" 2>/dev/null '
            "| awk '/worker process$/ {print $1; exit}'); age=${age:-0}; "
            f'[ "$age" -gt {window} ] && age={window}; since=$(( $(date +%s) - age )); '
            f"tail -n 500 {shlex.quote(log)} 2>/dev/null | awk -v s=\"$since\" '$1 >= s' "
            f"| tail -n {limit}")


def host_check_script(tier: str, address: str, port: int = 80, interface: str = "eth0",
                      upstreams: Sequence[Upstream] = (), access_log: str = "",
                      fail_timeout: float = 0.0) -> str:
    """The shell script that collects what `parse_check_output` needs on a host of `tier`
    (`upstreams`: the web servers a proxy sends traffic to; `access_log`: where it logs
    requests, read back `fail_timeout` seconds)."""
    daemons = {"web": ["apache2"], "rp": ["nginx", "keepalived"]}.get(tier, [])
    start, report = upstream_probes(upstreams) if tier == "rp" else ([], [])
    lines = start + [f'if pidof {d} >/dev/null; then echo "{MARK}up {d}"; '
                     f'else echo "{MARK}down {d}"; fi' for d in daemons]
    if tier in ("web", "rp"):
        lines.append(f'echo "{MARK}http"; curl -s -m 3 -o /dev/null -D - '
                     f'http://{address}:{port}/; echo "{MARK}curl $?"')
    if tier == "rp":
        lines.append(f'echo "{MARK}addr"; ip -br addr show dev {interface}')
        if access_log:
            lines.append(recent_requests(access_log, fail_timeout))
    return "\n".join(lines + report) + "\n"


@dataclass
class HostCheck:
    """What a host's check output says."""

    running: dict[str, bool] = field(default_factory=dict)
    http_status: int | None = None
    served_by: str = ""
    curl_rc: int | None = None
    addresses: list[str] = field(default_factory=list)
    upstreams: dict[str, int] = field(default_factory=dict)  # web server -> HTTP code, 0: none
    upstream_addresses: dict[str, str] = field(default_factory=dict)  # name -> address:port
    # Upstream addresses that failed a request lately (NGINX may hold them marked failed);
    # the upstream's own name when NGINX found no live server at all.
    failed_recently: list[str] = field(default_factory=list)

    @property
    def serving(self) -> list[str]:
        """The upstreams that answer 200 directly, in the order of the check."""
        return [name for name, code in self.upstreams.items() if code == 200]


def parse_ip_br(output: str) -> list[str]:
    """Addresses (without prefix) in `ip -br addr` output."""
    found = []
    for line in output.splitlines():
        for token in line.split()[2:]:
            found.append(token.split("/")[0])
    return found


def failed_attempts(lines: list[str]) -> list[str]:
    """The upstream addresses that answered 502/503/504 (or could not be reached) in access
    log lines of the `trace` format: ... "request" status addrs statuses times total (pure).
    A request retried on another server lists both, comma-separated."""
    failed = set()
    for line in lines:
        _, quote, rest = line.rpartition('"')
        words = rest.replace(", ", ",").replace(" : ", ",").split()
        if not quote or len(words) < 3:
            continue
        for addr, code in zip(words[1].split(","), words[2].split(","), strict=False):
            if code in ("502", "503", "504"):
                failed.add(addr)
    return sorted(failed)


def _close_section(check: HostCheck, section: str, body: list[str]) -> None:
    if section == "http":
        status = next((ln for ln in body if ln.startswith("HTTP/")), "")
        match = re.match(r"HTTP/\S+ (\d{3})", status)
        check.http_status = int(match.group(1)) if match else None
        for ln in body:
            if ln.lower().startswith("x-served-by:"):
                check.served_by = ln.split(":", 1)[1].strip()
    elif section == "addr":
        check.addresses = parse_ip_br("\n".join(body))
    elif section == "recent":
        check.failed_recently = failed_attempts(body)


def _read_marker(check: HostCheck, word: list[str]) -> None:
    if word[0] in ("up", "down"):
        check.running[word[1]] = word[0] == "up"
    elif word[0] == "curl":
        check.curl_rc = int(word[1])
    elif word[0] == "upstream" and len(word) == 4:
        check.upstream_addresses[word[1]] = word[2]
        check.upstreams[word[1]] = int(word[3]) if word[3].isdigit() else 0


def parse_check_output(output: str) -> HostCheck:
    """Split `host_check_script` output into its sections (pure)."""
    check, section, body = HostCheck(), "", []
    for line in output.splitlines() + [MARK + "end"]:
        if not line.startswith(MARK):
            body.append(line)
            continue
        _close_section(check, section, body)
        word = line[len(MARK):].split()
        section, body = word[0], []
        _read_marker(check, word)
    # The probes run in parallel: their lines come in any order.
    check.upstreams = dict(sorted(check.upstreams.items(), key=lambda i: natural_key(i[0])))
    return check


def upstream_problem(check: HostCheck, hint: str = "") -> str | None:
    """Why a proxy does not answer 200, in words, when its web servers say why: none answers
    (`hint`: what to do about it), or none serves 200 (each one's code). None otherwise."""
    if not check.upstreams or check.serving:
        return None
    silent = [name for name, code in check.upstreams.items() if code == 0]
    if len(silent) == len(check.upstreams):
        return f"web tier not answering on {', '.join(silent)}{hint}"
    codes = ", ".join(f"{name} {f'HTTP {code}' if code else 'no answer'}"
                      for name, code in check.upstreams.items())
    return (f"HTTP {check.http_status or 'no answer'} on the node's address; no web server "
            f"serves 200 from here ({codes})")


def problems(tier: str, check: HostCheck, expect_served_by: str = "", hint: str = "") -> list[str]:
    """What is wrong with a host according to its parsed check (empty: healthy).

    `hint`: appended to "web tier not answering on ..." (a proxy whose upstreams are silent).
    """
    found = [f"{d} is not running" for d, up in check.running.items() if not up]
    why = upstream_problem(check, hint) if tier == "rp" and check.http_status != 200 else None
    if why:
        return [*found, why]
    if tier in ("web", "rp"):
        if check.http_status is None:
            found.append(f"no HTTP answer on the node's address (curl exit {check.curl_rc})")
        elif check.http_status != 200:
            found.append(f"HTTP {check.http_status} on the node's address")
    if tier == "web" and check.http_status == 200 and check.served_by != expect_served_by:
        found.append(f"X-Served-By is {check.served_by!r}, expected {expect_served_by!r}")
    return found


def fresh_start_reason(before: HostCheck, now: HostCheck) -> str:
    """Why a proxy's NGINX must start its upstreams afresh (reload), '' when it need not.

    NGINX marks a web server failed for `fail_timeout` after a failed request (passive
    health), also one that was simply not deployed yet. When web servers that did not
    answer at `before` (the deploy's first read) answer at `now`, or the proxy does not
    answer 200 while web servers answer it directly, or web servers that answer directly
    failed a request through it within `fail_timeout` (its access log), those marks are
    stale (pure)."""
    back = [name for name in now.serving if name not in before.serving]
    if back:
        return f"web server(s) up since the deploy began: {', '.join(back)}"
    anyone = any(":" not in addr for addr in now.failed_recently)  # "no live upstreams"
    marked = [name for name in now.serving
              if anyone or now.upstream_addresses.get(name) in now.failed_recently]
    if marked:
        return (f"{', '.join(marked)} answer(s) directly but failed a request through NGINX "
                "within its fail_timeout: stale failure marks")
    if now.http_status != 200 and now.serving:
        return (f"HTTP {now.http_status or 'no answer'} through NGINX while "
                f"{', '.join(now.serving)} answer(s) directly: stale failure marks")
    return ""


def vip_holders(addresses: dict[str, list[str]], vip: str) -> list[str]:
    """The hosts whose address list holds `vip`, sorted."""
    return sorted(name for name, addrs in addresses.items() if vip in addrs)


def read_addresses(task: Task, interface: str = "eth0") -> Result:
    """Result.result: the addresses on the host's `interface`."""
    out = run_command(task, f"ip -br addr show dev {interface}", timeout=5)
    return Result(host=task.host, result=parse_ip_br(out.stdout))


def read_vrrp_view(task: Task, interface: str = "eth0") -> Result:
    """Result.result: (the addresses on `interface`, whether Keepalived runs)."""
    out = run_command(task, f"ip -br addr show dev {interface}; "
                            f'if pidof keepalived >/dev/null; then echo "{MARK}vrrp"; fi',
                      timeout=5)
    lines = out.stdout.splitlines()
    addresses = parse_ip_br("\n".join(ln for ln in lines if not ln.startswith(MARK)))
    return Result(host=task.host, result=(addresses, f"{MARK}vrrp" in lines))


@dataclass
class VipCheck:
    """Who holds the VIP. `master` None: any single holder will do (vrrp_preempt false:
    after a failover the VIP rightly stays where it went)."""

    vip: str
    master: str | None
    holders: list[str]
    waited: float
    unreachable: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)  # reachable, but Keepalived not running
    proxies: int = 0  # how many proxies the inventory has (0: unknown)

    @property
    def ok(self) -> bool:
        return len(self.holders) == 1 and self.master in (None, self.holders[0])

    @property
    def hopeless(self) -> bool:
        """No proxy runs Keepalived: waiting longer cannot help."""
        return not self.ok and bool(self.proxies) and len(self.silent) == self.proxies

    def describe(self) -> str:
        if self.ok:
            whose = ("the inventory's MASTER" if self.master
                     else "no preemption: wherever the last election put it")
            return f"VIP {self.vip} on {self.holders[0]} ({whose}), only there"
        if self.hopeless:
            return (f"VIP {self.vip} held by no proxy: Keepalived runs on none of "
                    f"{', '.join(self.silent)} (rp tier not deployed: deploy it first, or run "
                    "without --group/--host)")
        held = ", ".join(self.holders) or "no proxy"
        lost = f"; unreachable: {', '.join(self.unreachable)}" if self.unreachable else ""
        silent = (f"; Keepalived not running on {', '.join(self.silent)}" if self.silent
                  else "")
        return (f"VIP {self.vip} held by {held} after {self.waited:.1f} s, expected "
                f"{self.master or 'one proxy'} alone{lost}{silent}")


def wait_for_vip(proxies: Nornir, vip: str, master: str | None, timeout: float = 10.0,
                 interval: float = 0.2, known: dict[str, list[str]] | None = None) -> VipCheck:
    """Poll the proxies' eth0 until `master` alone holds `vip`, at most `timeout` seconds.

    `known`: addresses just read from every proxy (the deploy's own check); when they
    already show `master` alone holding the VIP, no round trip is made. Proxies whose deploy
    failed are asked too; when none runs Keepalived, the answer comes at once.
    """
    started = time.monotonic()
    if known is not None and set(known) == set(proxies.inventory.hosts):
        check = VipCheck(vip, master, vip_holders(known, vip), 0.0)
        if check.ok:
            return check
    while True:
        results = proxies.run(task=read_vrrp_view, on_failed=True)
        seen = {h: r[0].result for h, r in results.items() if not r.failed}
        check = VipCheck(vip, master, vip_holders({h: a for h, (a, _) in seen.items()}, vip),
                         time.monotonic() - started,
                         sorted(h for h, r in results.items() if r.failed),
                         sorted((h for h, (_, vrrp) in seen.items() if not vrrp), key=natural_key),
                         len(proxies.inventory.hosts))
        if check.ok or check.hopeless or check.waited >= timeout:
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
                      timeout: float = 3.0, in_flight: int = 1) -> RoundRobin:
    """Send `n` GETs to the VIP (new connection each) and record `X-Served-By` (bounded),
    `in_flight` at a time (1: one after the other), in the order sent. The proxies share one
    round-robin across their workers (the upstream's zone), so the distribution is the same.

    With `bridge` (lab mode), refuse unless the VIP is routed through the lab bridge.
    """
    if bridge is not None:
        from tasks.core.guard import LabNotReady, check_addresses

        refused = check_addresses(bridge, [vip])
        if refused:
            raise LabNotReady("; ".join(refused))
    def send(_: int) -> ProbeRecord:
        return http_probe(vip, timeout, port=port)

    if in_flight <= 1:
        records = [send(i) for i in range(n)]
    else:
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            records = list(pool.map(send, range(n)))
    order, errors = [], []
    for record in records:
        if record.ok and record.server:
            order.append(record.server)
        else:
            errors.append(record.error or "no answer")
    return RoundRobin(order, errors)
