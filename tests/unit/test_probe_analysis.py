"""Client-visible outage from probe records."""

from __future__ import annotations

import json

import pytest

from tasks.drill.probe_analysis import ProbeRecord, analyze_probes

BASE = 1_700_000_000.0
WEBS = ("web1", "web2", "web3")


def ok(t: float, server: str, latency: float = 0.01) -> ProbeRecord:
    return ProbeRecord(time=BASE + t, ok=True, latency_s=latency, server=server)


def fail(t: float, error: str = "timeout") -> ProbeRecord:
    return ProbeRecord(time=BASE + t, ok=False, latency_s=None, error=error)


def drill() -> list[ProbeRecord]:
    """A probe every 0.5 s; fault at 5.2 s; requests 5.0..8.5 fail; service back at 9.0."""
    recs = [ok(i / 2, WEBS[i % 3]) for i in range(10)]  # 0.0 .. 4.5
    recs += [fail(5.0, "timeout")]  # sent before the fault, answer lost
    recs += [fail(5.5 + i / 2, "timeout") for i in range(5)]  # 5.5 .. 7.5
    recs += [fail(8.0, "connection refused"), fail(8.5, "connection refused")]
    recs += [ok(9.0, "web2", latency=0.8)]
    recs += [ok(9.5 + i / 2, WEBS[i % 2]) for i in range(4)]  # web1, web2 only
    return recs


def test_outage_window() -> None:
    result = analyze_probes(drill(), BASE + 5.2)
    assert (result.total, result.failed, result.failed_total) == (23, 8, 8)
    assert result.last_ok_before == BASE + 4.5
    assert (result.first_failed, result.last_failed) == (BASE + 5.0, BASE + 8.5)
    assert result.first_ok_after == BASE + 9.0
    assert result.failed_span_s == pytest.approx(3.5)
    assert result.outage_s == pytest.approx(4.5)
    assert result.recovered
    assert result.max_latency_s == pytest.approx(0.8)
    assert result.errors == {"timeout": 6, "connection refused": 2}


def test_servers_before_and_after() -> None:
    result = analyze_probes(drill(), BASE + 5.2)
    assert result.servers_before == ("web1", "web2", "web3")
    assert result.servers_after == ("web1", "web2")


def test_later_unrelated_failure_is_not_in_the_outage() -> None:
    recs = drill() + [fail(20.0, "reset"), ok(20.5, "web3")]
    result = analyze_probes(recs, BASE + 5.2)
    assert (result.failed, result.failed_total) == (8, 9)
    assert "reset" not in result.errors


def test_successes_right_after_the_fault_precede_the_outage() -> None:
    recs = [ok(0.0, "web1"), ok(1.0, "web2"), ok(2.0, "web3")]
    recs += [fail(3.0), fail(4.0), ok(5.0, "web1")]
    result = analyze_probes(recs, BASE + 0.5)
    assert (result.last_ok_before, result.first_ok_after) == (BASE + 2.0, BASE + 5.0)
    assert result.outage_s == pytest.approx(3.0)
    assert result.failed == 2


def test_no_failure_means_zero_outage() -> None:
    recs = [ok(i / 2, WEBS[i % 3]) for i in range(10)]
    result = analyze_probes(recs, BASE + 2.2)
    assert (result.failed, result.outage_s, result.failed_span_s) == (0, 0.0, None)
    assert (result.last_ok_before, result.first_ok_after) == (BASE + 2.0, BASE + 2.5)
    assert result.recovered


def test_never_recovered() -> None:
    recs = [ok(0.0, "web1"), fail(1.0), fail(2.0)]
    result = analyze_probes(recs, BASE + 0.5)
    assert (result.failed, result.first_ok_after, result.outage_s) == (2, None, None)
    assert not result.recovered


def test_fault_time_defaults_to_first_failure() -> None:
    result = analyze_probes(drill(), None)
    assert result.fault_time is None
    assert (result.failed, result.outage_s) == (8, pytest.approx(4.5))
    assert result.servers_before == ("web1", "web2", "web3")


def test_accepts_dicts_unsorted_and_serialises() -> None:
    dicts = [r.to_dict() for r in reversed(drill())]
    result = analyze_probes(dicts, BASE + 5.2)
    assert result.failed == 8 and result.records[0].time == BASE
    data = json.loads(json.dumps(result.to_dict()))
    assert data["errors"] == {"timeout": 6, "connection refused": 2}
    assert data["records"][0]["server"] == "web1"


def test_failure_before_the_fault_is_not_the_outage() -> None:
    recs = [fail(-3.0, "reset"), ok(-2.5, "web3")] + drill()
    result = analyze_probes(recs, BASE + 5.2)
    assert (result.first_failed, result.failed, result.failed_total) == (BASE + 5.0, 8, 9)
