"""Pure analysis of the client probe loop run during a failover drill.

Entry point (stable, used by the failover drill)::

    analyze_probes(records, fault_time) -> ProbeAnalysis

``records`` are :class:`ProbeRecord` (or dicts with the same keys): one HTTP request each,
with its send time (epoch seconds), success, latency, and the web server that answered or the
error. Nothing here touches the network.

Definitions (F = ``fault_time``; when None, F = the first failed request):

- Outage: the first run of consecutive failed requests sent after the last success before F
  (a request sent just before F whose answer was lost belongs to it). It ends at the next
  success. ``failed`` counts its requests; failures outside it count in ``failed_total`` only.
- ``failed_span_s``: first to last failed request of the outage (a lower bound of what the
  client saw); ``outage_s``: last success before to first success after the outage (an upper
  bound; 0 when nothing failed; None when the service never came back).
- ``servers_before``/``servers_after``: web servers that answered requests sent before F,
  and at or after F.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tasks.core.probe import ProbeRecord


@dataclass(frozen=True)
class ProbeAnalysis:
    """What the client saw around the fault (see the module docstring)."""

    fault_time: float | None
    total: int
    failed_total: int
    failed: int  # requests failed during the outage
    last_ok_before: float | None
    first_failed: float | None
    last_failed: float | None
    first_ok_after: float | None
    failed_span_s: float | None
    outage_s: float | None
    recovered: bool
    max_latency_s: float | None  # slowest success in [last_ok_before, first_ok_after]
    servers_before: tuple[str, ...]
    servers_after: tuple[str, ...]
    errors: dict[str, int]  # error -> count, during the outage
    records: tuple[ProbeRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the analysis as a JSON-serialisable dict."""
        return asdict(self)


def analyze_probes(
    records: Iterable[ProbeRecord | Mapping[str, Any]], fault_time: float | None
) -> ProbeAnalysis:
    """Return the client-visible outage around ``fault_time``."""
    recs = sorted(
        (r if isinstance(r, ProbeRecord) else ProbeRecord.from_dict(r) for r in records),
        key=lambda r: r.time,
    )
    fault = fault_time if fault_time is not None else _first_time(r for r in recs if not r.ok)
    outage = _outage(recs, fault) if fault is not None else []
    oks = [r for r in recs if r.ok]
    outage_s: float | None
    if outage:
        last_ok_before = _last_time(r for r in oks if r.time < outage[0].time)
        first_ok_after = _first_time(r for r in oks if r.time > outage[-1].time)
        outage_s = None
        if last_ok_before is not None and first_ok_after is not None:
            outage_s = first_ok_after - last_ok_before
    else:
        last_ok_before = _last_time(r for r in oks if fault is not None and r.time < fault)
        first_ok_after = _first_time(r for r in oks if fault is not None and r.time >= fault)
        outage_s = 0.0
    return ProbeAnalysis(
        fault_time=fault_time,
        total=len(recs),
        failed_total=sum(not r.ok for r in recs),
        failed=len(outage),
        last_ok_before=last_ok_before,
        first_failed=outage[0].time if outage else None,
        last_failed=outage[-1].time if outage else None,
        first_ok_after=first_ok_after,
        failed_span_s=None if not outage else outage[-1].time - outage[0].time,
        outage_s=outage_s,
        recovered=not outage or first_ok_after is not None,
        max_latency_s=_max_latency(recs, last_ok_before, first_ok_after),
        servers_before=_servers(r for r in recs if fault is None or r.time < fault),
        servers_after=_servers(r for r in recs if fault is not None and r.time >= fault),
        errors=dict(Counter(r.error or "unknown" for r in outage)),
        records=tuple(recs),
    )


def _outage(recs: Sequence[ProbeRecord], fault: float) -> list[ProbeRecord]:
    """Return the first run of failures sent after the last success before ``fault``."""
    last_ok = _last_time(r for r in recs if r.ok and r.time < fault)
    run: list[ProbeRecord] = []
    for rec in recs:
        if last_ok is not None and rec.time <= last_ok:
            continue
        if not rec.ok:
            run.append(rec)
        elif run:
            break
    return run


def _max_latency(
    recs: Sequence[ProbeRecord], start: float | None, end: float | None
) -> float | None:
    """Return the slowest successful latency sent within [start, end]."""
    lo = start if start is not None else float("-inf")
    hi = end if end is not None else float("inf")
    latencies = [
        r.latency_s for r in recs if r.ok and r.latency_s is not None and lo <= r.time <= hi
    ]
    return max(latencies) if latencies else None


def _servers(recs: Iterable[ProbeRecord]) -> tuple[str, ...]:
    """Return the distinct servers that answered, sorted."""
    return tuple(sorted({r.server for r in recs if r.ok and r.server}))


def _first_time(recs: Iterable[ProbeRecord]) -> float | None:
    return next((r.time for r in recs), None)


def _last_time(recs: Iterable[ProbeRecord]) -> float | None:
    times = [r.time for r in recs]
    return times[-1] if times else None
