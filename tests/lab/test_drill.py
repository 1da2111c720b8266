"""The failover drill against the real stack in the local lab: every fault mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tasks.core.settings import REPO_ROOT
from tp5lab.control import Lab
from tp5lab.inventory_factory import write_inventory

pytestmark = pytest.mark.lab

RP1, RP2 = "10.5.1.111", "10.5.1.112"


def drill(tmp_path: Path, *args: str, timeout: float = 240) -> tuple[int, str, dict[str, Any]]:
    out = tmp_path / "drill.json"
    proc = subprocess.run(
        [sys.executable, "runbooks/failover_drill.py", "--json", str(out),
         "--pcap", str(tmp_path / "drill.pcap"), "--png", str(tmp_path / "drill.png"), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    summary = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, summary


def assert_failover_rp1_to_rp2(code: int, output: str, summary: dict[str, Any]) -> dict:
    assert code == 0, output
    exp = summary["experiments"][0]
    assert exp["ok"] and exp["problems"] == []
    assert exp["holders_after_fault"] == ["rp2"]
    assert exp["holders_after_restore"] == ["rp1"]
    capture = exp["capture"]
    failover = capture["failover"]
    assert (failover["old_master"], failover["new_master"]) == (RP1, RP2)
    assert capture["split_brains"] == []
    adverts = capture["adverts"]
    sources = [a["src_ip"] for a in adverts if a["priority"] > 0]
    # rp1 advertises before the fault, rp2 after it, and rp1 again after preempting back.
    first_rp2 = sources.index(RP2)
    assert set(sources[:first_rp2]) == {RP1} and first_rp2 >= 1
    # The capture starts before the fault, and the new MASTER only speaks after it.
    assert adverts[0]["time"] < exp["fault_time"] < failover["new_first_time"]
    assert sources[-1] == RP1
    probes = exp["probes"]
    assert probes["recovered"] and set(probes["servers_after"]) == {
        "web1.tp5.b2", "web2.tp5.b2", "web3.tp5.b2"}
    return exp


@pytest.mark.parametrize("fault", ["crash", "link", "stop", "nginx"])
def test_each_fault_moves_the_vip_to_rp2_and_the_restore_brings_rp1_back(
    deployed: object, tmp_path: Path, fault: str
) -> None:
    code, output, summary = drill(tmp_path, "--capture", "--fault", fault)
    exp = assert_failover_rp1_to_rp2(code, output, summary)
    kind = exp["capture"]["failover"]["kind"]
    resigned = [a for a in exp["capture"]["adverts"] if a["priority"] == 0]
    if fault in ("stop", "nginx"):
        assert kind == "clean_stop" and resigned and resigned[0]["src_ip"] == RP1
    else:
        assert kind == "crash" and resigned == []
    assert (tmp_path / "drill.pcap").stat().st_size > 0
    assert (tmp_path / "drill.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_capture_is_analysed_offline(deployed: object, tmp_path: Path) -> None:
    code, output, _ = drill(tmp_path, "--capture", "--fault", "stop")
    assert code == 0, output
    saved = tmp_path / "saved.pcap"
    (tmp_path / "drill.pcap").rename(saved)
    code, output, summary = drill(tmp_path, "--analyze", str(saved))
    assert code == 0, output
    assert summary["capture"]["failover"]["new_master"] == RP2
    assert "takeover measured" in output


def test_no_fault_is_injected_when_the_steady_state_does_not_hold(
    deployed: object, lab: Lab, tmp_path: Path
) -> None:
    # rp2 is not the VIP holder, so a drill that expects it to be must refuse to start.
    code, output, summary = drill(tmp_path, "--fault", "stop", "--target", "rp2",
                                  "--settle", "2")
    assert code == 1
    exp = summary["experiments"][0]
    assert exp["problems"][0].startswith("steady state not met, nothing injected")
    assert exp["fault_time"] == 0.0 and exp["probes"] is None
    ps = subprocess.run(lab.nsenter_argv("rp2", ["pgrep", "-x", "keepalived"]),
                        capture_output=True, text=True)
    assert ps.returncode == 0, "keepalived on rp2 must still run"


def test_fast_profile_takes_over_with_vrrpv3_sub_second_adverts(
    deployed: object, deploy: Any, tmp_path: Path
) -> None:
    fast = write_inventory(tmp_path / "fast", 3, {"rp": {"vrrp_profile": "fast"}})
    try:
        run = deploy("--config", str(fast), "--group", "rp")
        assert run.returncode == 0, run.stdout + run.stderr
        code, output, summary = drill(tmp_path, "--config", str(fast), "--capture",
                                      "--fault", "crash")
        exp = assert_failover_rp1_to_rp2(code, output, summary)
        failover = exp["capture"]["failover"]
        assert failover["version"] == 3 and failover["advert_int"] == pytest.approx(0.1)
        assert exp["capture"]["expected"]["bound_s"] == pytest.approx(0.3 + 156 * 0.1 / 256)
    finally:
        back = deploy("--group", "rp")
        assert back.returncode == 0, back.stdout + back.stderr


def test_without_preemption_the_vip_stays_and_the_next_run_faults_its_new_holder(
    deployed: object, deploy: Any, tmp_path: Path
) -> None:
    nopreempt = write_inventory(tmp_path / "nopreempt", 3, {"rp": {"vrrp_preempt": False}})
    try:
        run = deploy("--config", str(nopreempt), "--group", "rp")
        assert run.returncode == 0, run.stdout + run.stderr
        code, output, summary = drill(tmp_path, "--config", str(nopreempt), "--fault", "stop",
                                      "--repeat", "2")
        assert code == 0, output
        first, second = summary["experiments"]
        assert (first["target"], first["backup"]) == ("rp1", "rp2")
        assert first["holders_after_restore"] == ["rp2"]  # rp1 came back and did not preempt
        assert (second["target"], second["backup"]) == ("rp2", "rp1")
        assert second["holders_after_fault"] == ["rp1"] == second["holders_after_restore"]
    finally:
        back = deploy("--group", "rp")
        assert back.returncode == 0, back.stdout + back.stderr
