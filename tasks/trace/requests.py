"""`trace.py --requests N`: send N requests through the VIP, then read where each one went
from the proxies' and web servers' logs (the client only learns the request ids)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nornir.core import Nornir

from tasks.core.guard import ensure_lab_targets
from tasks.core.inventory import fqdn, vip
from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import EXIT_BAD_INVENTORY, ProjectError, load_settings
from tasks.trace.join import Names, RequestTrace, Seen, join_traces, missing_ids
from tasks.trace.logs import collect_lines
from tasks.trace.send import send_requests


@dataclass
class TraceReport:
    vip: str
    traces: list[RequestTrace]
    problems: dict[str, str] = field(default_factory=dict)
    waited: float = 0.0

    @property
    def ok(self) -> bool:
        """Every request answered and its whole path read from the logs."""
        return bool(self.traces) and all(t.complete for t in self.traces)

    def lines(self) -> list[str]:
        out = [t.describe() for t in self.traces]
        out += [f"{host}: {problem}" for host, problem in sorted(self.problems.items())]
        done = sum(t.complete for t in self.traces)
        out.append(f"{done}/{len(self.traces)} request(s) through {self.vip} traced from the "
                   f"logs (proxy -> web server -> db node), logs read in {self.waited:.1f} s")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"vip": self.vip, "ok": self.ok, "requests": [t.to_dict() for t in self.traces],
                "problems": self.problems, "logs_read_seconds": round(self.waited, 3)}


def inventory_names(nr: Nornir) -> Names:
    """Names of every host by fqdn, address and address:port (web servers' http_port)."""
    return Names.of((h.name, fqdn(h), str(h.hostname), h.get("http_port"))
                    for h in nr.inventory.hosts.values())


def _app_name(nr: Nornir) -> str:
    host = next(iter(nr.inventory.hosts.values()))
    return str(host["app_name"])


def trace_requests(config: str | None, count: int, wait: float,
                   timeout: float = 3.0) -> TraceReport:
    """Send `count` GETs through the VIP, read the logs (up to `wait` s for every id)."""
    settings = load_settings(config)
    nr = build_nornir(settings, check_lab=False)
    address = vip(nr.inventory)
    if address is None:
        raise ProjectError(f"{settings.hosts_file}: no proxy (rp) in the inventory, so no VIP "
                           "to send requests to", EXIT_BAD_INVENTORY)
    nodes = select_hosts(nr, ["rp", "web"])
    ensure_reachable(nodes, settings)
    if settings.is_lab:
        ensure_lab_targets(settings, [address])
    sent = send_requests(address, count, timeout)
    ids = [s.request_id for s in sent if s.request_id]
    names = inventory_names(nr)

    def complete(seen: list[Seen]) -> bool:
        return not missing_ids(join_traces(sent, seen, names))

    try:
        collected = collect_lines(nodes, ids, _app_name(nr), wait, complete) if ids else None
    finally:
        nr.close_connections()
    if collected is None:
        return TraceReport(address, join_traces(sent, [], names))
    return TraceReport(address, join_traces(sent, collected.seen, names), collected.problems,
                       collected.waited)
