"""The drill's pure parts: the verdict on what an experiment recorded, the records, the
evidence paths, the faults as data and the checks of command-line values."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP
from scapy.packet import Packet

from tasks.core.probe import ProbeRecord
from tasks.core.settings import ProjectError
from tasks.drill import arguments
from tasks.drill.evidence import EvidencePaths
from tasks.drill.faults import FAULTS, fault_named
from tasks.drill.record import DrillRun, Experiment, spread
from tasks.drill.verdict import conclude, expectation_problems, failures_after

BASE = 1_700_000_000.0
VIP = "10.5.1.110"
RP1, RP2 = "10.5.1.111", "10.5.1.112"
NAMES = {RP1: "rp1", RP2: "rp2"}


def advert(t: float, src: str, prio: int) -> Packet:
    pkt = Ether() / IP(src=src, dst="224.0.0.18", proto=112, ttl=255)
    pkt = pkt / VRRP(vrid=51, priority=prio, adv=1, addrlist=[VIP])
    pkt.time = BASE + t
    return pkt


def probe(t: float, ok: bool = True, error: str | None = None) -> ProbeRecord:
    return ProbeRecord(BASE + t, ok, 0.01, "web1" if ok else None, None if ok else error)


def experiment(old: str = RP1, new: str = RP2, holders: list[str] | None = None,
               recovered: bool = True, split: bool = False) -> Experiment:
    """rp1 advertises, the fault at 5.5 s, `new` takes over; probes fail 6..7 s."""
    exp = Experiment("crash", "rp1", "rp2", fault_time=BASE + 5.5, restore_time=BASE + 12.0,
                     holders_after_fault=["rp2"] if holders is None else holders)
    exp.packets = [advert(float(i), old, 150) for i in range(6)]
    exp.packets += [advert(8.609375 + i, new, 100) for i in range(6)]
    if split:
        exp.packets += [advert(9.0 + i, old, 150) for i in range(3)]
    exp.records = [probe(t / 2) for t in range(12)] + [probe(6.0, False, "timeout"),
                                                       probe(6.5, False, "timeout")]
    if recovered:
        exp.records += [probe(t / 2) for t in range(18, 30)]
    exp.records += [probe(12.5, False, "HTTP 502")]
    exp.records.sort(key=lambda r: r.time)
    return exp


def test_a_clean_takeover_passes() -> None:
    exp = experiment()
    conclude(exp, VIP, NAMES, captured=True)
    assert exp.ok, exp.problems
    assert exp.capture is not None and exp.capture.failover is not None
    assert exp.probes is not None and exp.probes.recovered
    assert exp.failed_after_restore == {"HTTP 502": 1}


def test_without_capture_only_the_probes_and_holders_are_judged() -> None:
    exp = experiment(old=RP2, new=RP1)  # the capture would be wrong, but is not taken
    conclude(exp, VIP, NAMES, captured=False)
    assert exp.ok and exp.capture is None


@pytest.mark.parametrize(("exp", "problem"), [
    (experiment(holders=["rp1", "rp2"]), "after the fault the VIP was on ['rp1', 'rp2']"),
    (experiment(holders=[]), "after the fault the VIP was on [], expected only rp2"),
    (experiment(recovered=False), "the probes never succeeded again after the fault"),
    (experiment(old=RP2, new=RP1), f"takeover {RP2} -> {RP1}, expected rp1 -> rp2"),
    (experiment(split=True), "split brain"),
])
def test_each_unmet_expectation_is_reported(exp: Experiment, problem: str) -> None:
    conclude(exp, VIP, NAMES, captured=True)
    assert not exp.ok
    assert any(problem in p for p in exp.problems), exp.problems


def test_a_capture_without_takeover_is_a_problem() -> None:
    exp = experiment()
    exp.packets = exp.packets[:6]
    conclude(exp, VIP, NAMES, captured=True)
    assert "the capture shows no takeover after the fault" in exp.problems


def test_problems_add_to_those_the_steps_found() -> None:
    exp = experiment()
    exp.problems = ["rp2 did not take the VIP within 11.6 s"]
    conclude(exp, VIP, NAMES, captured=True)
    assert exp.problems == ["rp2 did not take the VIP within 11.6 s"]
    assert expectation_problems(exp, NAMES) == []


def test_failures_after_the_restore() -> None:
    records = [probe(1.0, False, "timeout"), probe(2.0, False, "reset"), probe(3.0),
               probe(4.0, False, "reset"), probe(5.0, False)]
    assert failures_after(records, BASE + 2.0) == {"reset": 2, "?": 1}
    assert failures_after(records, None) == {}


def test_drill_run_summary_and_spread() -> None:
    first, second = experiment(), experiment(holders=[])
    for exp in (first, second):
        conclude(exp, VIP, NAMES, captured=True)
    run = DrillRun("crash", 2, [first, second])
    assert not run.ok and not run.interrupted and run.left_faulted is None
    summary = run.to_dict()
    assert summary["runs"] == 2 and summary["takeover_s"]["n"] == 2
    assert summary["experiments"][1]["problems"] == second.problems
    assert spread([]) is None
    assert spread([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0, "n": 3}
    assert not DrillRun("crash", 1).ok  # no experiment is no success


def test_evidence_paths(tmp_path: Path) -> None:
    one = EvidencePaths(tmp_path / "a.pcap", None, folder=tmp_path / "out")
    assert one.for_run("stop", 1, 1) == (tmp_path / "a.pcap", tmp_path / "out/drill-stop.png")
    assert one.for_run("stop", 2, 3) == (tmp_path / "a-2.pcap",
                                         tmp_path / "out/drill-stop-2.png")
    assert (tmp_path / "out").is_dir()


def test_faults_are_data() -> None:
    assert set(FAULTS) == {"crash", "link", "stop", "nginx"}
    assert {f.name for f in FAULTS.values() if f.needs_lab} == {"crash", "link"}
    assert {f.name: f.bound_kind for f in FAULTS.values()} == {
        "crash": "crash", "link": "crash", "stop": "clean_stop", "nginx": "clean_stop"}
    assert fault_named("stop", is_lab=False) is FAULTS["stop"]
    assert fault_named("crash", is_lab=True) is FAULTS["crash"]
    for name in ("crash", "link", "nosuch"):
        with pytest.raises(ProjectError) as err:
            fault_named(name, is_lab=False)
        assert err.value.exit_code == 2 and f"--fault {name}" in str(err.value)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "601", "", "1s", "1e400"])
def test_seconds_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="0 to 600"):
        arguments.seconds(0, 600)(text)


def test_seconds_and_count_accept() -> None:
    assert arguments.seconds(0, 600)("0") == 0.0
    assert arguments.seconds(0.005, 1)("1e-2") == 0.01
    assert math.isclose(arguments.seconds(0, 600)(" 15.5 "), 15.5)
    assert arguments.count(1, 50)("50") == 50
    for text in ("0", "51", "2.5", "nan", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="1 to 50"):
            arguments.count(1, 50)(text)


def test_ipv4() -> None:
    assert arguments.ipv4("10.5.1.110") == "10.5.1.110"
    for text in ("10.5.1", "::1", "10.5.1.256", "10.5.1.110/24", "vip", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="IPv4"):
            arguments.ipv4(text)


def test_drillable_group() -> None:
    assert arguments.drillable_group("rp") == "rp"
    assert arguments.drillable_group("web") == "web"
    assert arguments.drillable_group("db") == "db"
    for group in ("DB", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="are: rp .*, web .*, db"):
            arguments.drillable_group(group)


def test_paths(tmp_path: Path) -> None:
    assert arguments.output_path(str(tmp_path / "x.json")) == tmp_path / "x.json"
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        arguments.output_path(str(tmp_path / "no" / "x.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        arguments.output_path(str(tmp_path))
    (tmp_path / "f").write_text("")
    assert arguments.input_file(str(tmp_path / "f")) == tmp_path / "f"
    with pytest.raises(argparse.ArgumentTypeError, match="no such file"):
        arguments.input_file(str(tmp_path / "g"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        arguments.input_file(str(tmp_path))
