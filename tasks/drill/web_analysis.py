"""Pure analyses of a web drill: what the clients saw per phase, what NGINX did with the node.

Phases (by the probe's send time): before the fault, during it (fault .. the restore done),
after the restore. Latency percentiles are over the requests that succeeded; failed requests
are counted apart. Nothing here touches the network.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tasks.core.probe import ProbeRecord
from tasks.drill.nginx_log import AccessLine, UpstreamTry, tries_on

PHASES = ("before", "during", "after")


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile (pct in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class PhaseStats:
    """The client requests sent during one phase."""

    requests: int
    failed: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    errors: dict[str, int]
    servers: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def phase_stats(records: Iterable[ProbeRecord]) -> PhaseStats:
    recs = list(records)
    latencies = [r.latency_s for r in recs if r.ok and r.latency_s is not None]
    return PhaseStats(
        requests=len(recs), failed=sum(not r.ok for r in recs),
        p50_s=percentile(latencies, 50), p99_s=percentile(latencies, 99),
        max_s=max(latencies) if latencies else None,
        errors=dict(Counter(r.error or "?" for r in recs if not r.ok)),
        servers=tuple(sorted({r.server for r in recs if r.ok and r.server})),
    )


def phases(records: Iterable[ProbeRecord], fault: float, restored: float | None
           ) -> dict[str, PhaseStats]:
    """Before / during / after stats; with no completed restore, everything after the
    fault is `during`."""
    end = math.inf if restored is None else restored
    split: dict[str, list[ProbeRecord]] = {p: [] for p in PHASES}
    for r in records:
        split["before" if r.time < fault else "during" if r.time < end else "after"].append(r)
    return {name: phase_stats(recs) for name, recs in split.items()}


def back_in_rotation_s(records: Iterable[ProbeRecord], server: str,
                       since: float | None) -> float | None:
    """Seconds from `since` (the restore done) to the first probe sent then that `server`
    answered; None if it answered none."""
    if since is None:
        return None
    sent = [r.time for r in records if r.ok and r.server == server and r.time >= since]
    return min(sent) - since if sent else None


@dataclass(frozen=True)
class NginxView:
    """What the proxies' logs show NGINX doing with the faulted server (epoch seconds)."""

    lines: int  # requests logged during the observation
    unparsed: int  # log lines not in the trace format
    tries: tuple[UpstreamTry, ...]  # every try on the server
    marked_down: float | None  # the first failed try after the fault ended: NGINX counts it
    stopped: float | None  # the last try sent before that: NGINX stopped sending
    first_skipped: float | None  # the first request after it that NGINX sent elsewhere
    failed_tries: int  # tries on the server that failed during the fault
    trial_tries: int  # tries after marked_down, before the restore (one per fail_timeout)
    resumed: float | None  # the first try it answered after the restore
    retried: int  # requests that failed on the server and were answered by another
    failed_at_proxy: int  # requests the proxy answered with 5xx after the fault

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "tries"} | {
            "tries": [t.to_dict() for t in self.tries]}


def nginx_view(lines: Sequence[AccessLine], server: str, fault: float,
               restored: float | None, unparsed: int = 0) -> NginxView:
    """NGINX's view of the faulted `server` ("10.5.1.11:80") around the fault."""
    tries = tries_on(lines, server)
    end = math.inf if restored is None else restored
    failed = [t for t in tries if not t.ok and t.ended >= fault and t.sent < end]
    marked = min((t.ended for t in failed), default=None)
    stopped = max((t.sent for t in tries if marked is not None and t.sent <= marked),
                  default=None)
    return NginxView(
        lines=len(lines), unparsed=unparsed, tries=tuple(tries), marked_down=marked,
        stopped=stopped, first_skipped=_first_skipped(lines, server, marked),
        failed_tries=len(failed),
        trial_tries=sum(marked is not None and marked < t.sent < end for t in tries),
        resumed=min((t.sent for t in tries if t.ok and restored is not None
                     and t.sent >= restored), default=None),
        retried=sum(_retried(a, server) for a in lines),
        failed_at_proxy=sum(a.status >= 500 and a.end >= fault for a in lines),
    )


def _first_skipped(lines: Sequence[AccessLine], server: str, marked: float | None
                   ) -> float | None:
    if marked is None:
        return None
    return min((a.start for a in lines if a.start > marked and a.tries
                and a.tries[0].addr != server), default=None)


def _retried(line: AccessLine, server: str) -> bool:
    on_server = [i for i, t in enumerate(line.tries) if t.addr == server and not t.ok]
    return bool(on_server) and any(t.ok for t in line.tries[on_server[0] + 1:])
