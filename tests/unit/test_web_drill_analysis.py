"""The web drill's pure analyses and verdict, on made-up probes and proxy log lines: the
phases (failed requests, p50/p99), NGINX taking the node out and back, the bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.probe import ProbeRecord
from tasks.drill.nginx_log import AccessLine, UpstreamTry
from tasks.drill.nginx_site import NginxTimeouts
from tasks.drill.web_analysis import back_in_rotation_s, nginx_view, percentile, phases
from tasks.drill.web_record import WebDrillRun, WebExperiment
from tasks.drill.web_report import experiment_lines
from tasks.drill.web_timeline_png import render_web_timeline
from tasks.drill.web_verdict import conclude_web

BASE = 1_700_000_000.0
WEB1, WEB2 = "10.5.1.11:80", "10.5.1.12:80"
NGINX = NginxTimeouts(1.0, 5.0, 1, 10.0, ("error", "timeout", "http_502"))
FAULT, RESTORED = BASE + 10.0, BASE + 26.0


def probe(t: float, latency: float = 0.005, server: str | None = "web2.tp5.b2",
          error: str | None = None) -> ProbeRecord:
    return ProbeRecord(BASE + t, error is None, latency, server if error is None else None,
                       error)


def request(start: float, *tries: tuple[str, int | None, float], status: int = 200
            ) -> AccessLine:
    """A logged request from `start` (seconds from BASE) with its tries in order."""
    sent, out = BASE + start, []
    for addr, code, took in tries:
        out.append(UpstreamTry(addr, code, took, sent))
        sent += took
    return AccessLine("rp1", sent, f"id{start}", "10.5.1.1", "GET / HTTP/1.1", status,
                      sent - BASE - start, tuple(out))


def hang_lines() -> list[AccessLine]:
    """web1 serves until the fault at 10 s; frozen, its tries time out after 5 s (10..15);
    marked down at 15.0; one trial at 25 s; back at 30 s after the restore at 26 s."""
    lines = [request(t, (WEB1 if t % 2 else WEB2, 200, 0.004)) for t in range(10)]
    lines += [request(10.0, (WEB1, 504, 5.0), (WEB2, 200, 0.004)),
              request(12.0, (WEB1, 504, 5.0), (WEB2, 200, 0.004)),
              request(14.5, (WEB1, 504, 5.0), (WEB2, 200, 0.004)),
              request(15.5, (WEB2, 200, 0.004)),
              request(25.0, (WEB1, 504, 5.0), (WEB2, 200, 0.004)),
              request(30.0, (WEB1, 200, 0.004)), request(31.0, (WEB2, 200, 0.004))]
    return lines


def hang_records() -> list[ProbeRecord]:
    records = [probe(t / 2) for t in range(20)]  # before the fault
    records += [probe(10.0, 5.006), probe(12.0, 5.005), probe(13.0), probe(25.0, 5.01)]
    records += [probe(27.0), probe(30.0, server="web1.tp5.b2"), probe(31.0)]
    return records


def experiment(records: list[ProbeRecord] | None = None) -> WebExperiment:
    exp = WebExperiment("hang", "web1", NGINX, 7.0, fault_time=FAULT, restore_time=FAULT + 15.9,
                        restored_time=RESTORED)
    exp.records = hang_records() if records is None else records
    return exp


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_phases_split_at_the_fault_and_the_restore() -> None:
    records = hang_records() + [probe(11.0, error="timeout"), probe(28.0, error="HTTP 502")]
    split = phases(records, FAULT, RESTORED)
    before, during, after = split["before"], split["during"], split["after"]
    assert (before.requests, before.failed, before.p50_s, before.p99_s) == (20, 0, 0.005, 0.005)
    assert (during.requests, during.failed, during.errors) == (5, 1, {"timeout": 1})
    assert during.p50_s == 5.005 and during.p99_s == 5.01 == during.max_s
    assert (after.requests, after.failed) == (4, 1)
    assert after.servers == ("web1.tp5.b2", "web2.tp5.b2")
    assert phases(records, FAULT, None)["after"].requests == 0  # no restore: all "during"


def test_back_in_rotation_is_the_first_request_the_node_answered_after_the_restore() -> None:
    assert back_in_rotation_s(hang_records(), "web1.tp5.b2", RESTORED) == pytest.approx(4.0)
    assert back_in_rotation_s(hang_records(), "web3.tp5.b2", RESTORED) is None
    assert back_in_rotation_s(hang_records(), "web1.tp5.b2", None) is None


def test_nginx_view_of_a_hang() -> None:
    view = nginx_view(hang_lines(), WEB1, FAULT, RESTORED)
    assert view.marked_down == pytest.approx(BASE + 15.0)  # the first timeout ended
    assert view.stopped == pytest.approx(BASE + 14.5)  # the last try sent before that
    assert view.first_skipped == pytest.approx(BASE + 15.5)
    assert (view.failed_tries, view.trial_tries, view.retried) == (4, 1, 4)
    assert view.resumed == pytest.approx(BASE + 30.0)
    assert view.failed_at_proxy == 0 and view.lines == len(hang_lines())


def test_nginx_view_when_the_node_never_failed_nor_came_back() -> None:
    quiet = [request(t, (WEB1 if t % 2 else WEB2, 200, 0.004)) for t in range(12)]
    view = nginx_view(quiet, WEB1, FAULT, RESTORED)
    assert view.marked_down is None and view.stopped is None and view.first_skipped is None
    assert view.resumed is None and view.failed_tries == 0
    failed = quiet + [request(13.0, (WEB2, 502, 0.001), status=502)]
    assert nginx_view(failed, WEB1, FAULT, RESTORED).failed_at_proxy == 1


def test_a_hang_within_the_bound_passes() -> None:
    exp = experiment()
    conclude_web(exp, hang_lines(), WEB1, "web1.tp5.b2")
    assert exp.ok, exp.problems
    assert exp.back_in_rotation_s == pytest.approx(4.0)
    text = "\n".join(experiment_lines(exp))
    assert "stopped sending to web1 at +4.500 s" in text
    assert "marked it down at +5.000 s" in text
    assert "sent to web1 again 4.00 s after the restore (+20.000 s)" in text
    assert text.endswith("PASS")
    summary = WebDrillRun("hang", 1, [exp]).to_dict()
    assert summary["experiments"][0]["phases"]["during"]["p99_s"] == 5.01
    assert summary["experiments"][0]["nginx"]["trial_tries"] == 1


@pytest.mark.parametrize(("change", "problem"), [
    (lambda e: e.records.append(probe(11.0, error="timeout")),
     "1 request(s) failed during the fault (timeout x1)"),
    (lambda e: e.records.append(probe(1.0, error="HTTP 502")),
     "1 request(s) failed before the fault"),
    (lambda e: e.records.append(probe(12.5, 6.2)),
     "the slowest request during the fault took 6.200 s, above the bound 6.000 s"),
    (lambda e: e.records.remove(probe(30.0, server="web1.tp5.b2")),
     "web1 answered no request after the restore"),
])
def test_each_unmet_expectation_is_reported(change, problem: str) -> None:
    exp = experiment()
    change(exp)
    conclude_web(exp, hang_lines(), WEB1, "web1.tp5.b2")
    assert any(problem in p for p in exp.problems), exp.problems
    assert "FAIL" in experiment_lines(exp)[-1]


def test_nginx_that_never_took_the_node_out_nor_back_is_reported() -> None:
    exp = experiment()
    conclude_web(exp, hang_lines()[:10], WEB1, "web1.tp5.b2")
    assert any("no failed try on web1" in p for p in exp.problems)
    assert any("no request answered by web1 after the restore" in p for p in exp.problems)


def test_unreadable_logs_leave_the_client_view() -> None:
    exp = experiment()
    conclude_web(exp, None, WEB1, "web1.tp5.b2")
    assert exp.ok and exp.view is None
    assert "the proxies' logs could not be read" in "\n".join(experiment_lines(exp))


def test_the_timeline_is_a_png(tmp_path: Path) -> None:
    exp = experiment(hang_records() + [probe(11.0, error="timeout")])
    conclude_web(exp, hang_lines(), WEB1, "web1.tp5.b2")
    out = render_web_timeline(tmp_path / "t.png", exp, "web1")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_logs = experiment()
    conclude_web(no_logs, None, WEB1, "web1.tp5.b2")
    assert render_web_timeline(tmp_path / "u.png", no_logs, "web1").stat().st_size > 0
