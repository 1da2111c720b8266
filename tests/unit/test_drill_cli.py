"""The drill's command line refuses bad values with exit 2 and one message, never a
traceback, before any work: these runs need no lab (a lab that is not there would exit 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP
from scapy.packet import Packet
from scapy.utils import wrpcap

from tasks.core.settings import REPO_ROOT
from tp5lab.inventory_factory import write_inventory

BASE = 1_700_000_000.0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "runbooks/failover_drill.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The error message of a run that must have exited 2 cleanly, naming `words`."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error) == 1, proc.stderr
    for word in words:
        assert word in error[0], (word, error[0])
    return error[0]


@pytest.fixture()
def no_lab_config(tmp_path: Path) -> Path:
    """An inventory whose lab bridge does not exist: any lab check would exit 3."""
    config = write_inventory(tmp_path / "inv", 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["lab"]["bridge"] = "tp5nobridge"
    config.write_text(yaml.safe_dump(raw))
    return config


def failover_capture(path: Path, vip: str) -> Path:
    """rp1 advertises `vip` for 5 s, falls silent, rp2 takes over after master-down."""
    def advert(t: float, src: str, prio: int) -> Packet:
        pkt = Ether() / IP(src=src, dst="224.0.0.18", proto=112, ttl=255) / VRRP(
            vrid=51, priority=prio, adv=1, addrlist=[vip])
        pkt.time = BASE + t
        return pkt

    packets = [advert(float(i), "10.5.1.111", 150) for i in range(5)]
    packets += [advert(7.609375 + i, "10.5.1.112", 100) for i in range(5)]
    wrpcap(str(path), packets)
    return path


@pytest.mark.parametrize("group", ["nosuch", "RP", "WEB", "DB", ""])
def test_only_drillable_groups_are_accepted(no_lab_config: Path, group: str) -> None:
    message = refused(run("--config", str(no_lab_config), "--group", group), "--group")
    assert "cannot be drilled" in message and "are: rp (the VRRP routers), web" in message


@pytest.mark.parametrize(("args", "words"), [
    (["--group", "web", "--fault", "link"],
     ["--fault link: not a fault of group web", "crash, stop, hang"]),
    (["--group", "web", "--fault", "nginx"], ["crash, stop, hang"]),
    (["--fault", "hang"], ["--fault hang: not a fault of group rp", "crash, link, stop, nginx"]),
    (["--fault", "nosuch"], ["not a fault of group rp"]),
    (["--group", "web", "--capture"], ["--capture", "no VRRP to capture", "--group rp"]),
    (["--group", "web", "--fault", "hang", "--iface", "eth0"], ["--iface", "no VRRP"]),
    (["--group", "web", "--target", "rp1"], ["--target rp1", "not a host of group web",
                                             "web1, web2, web3"]),
    (["--group", "web", "--probe-timeout", "31"], ["--probe-timeout", "0.05 to 30"]),
])
def test_web_drill_options_are_checked_before_any_work(no_lab_config: Path, args: list[str],
                                                       words: list[str]) -> None:
    refused(run("--config", str(no_lab_config), *args), *words)


@pytest.mark.parametrize("target", ["rp9", "web1", "db1", "RP1"])
def test_target_must_be_a_router_of_the_group(no_lab_config: Path, target: str) -> None:
    refused(run("--config", str(no_lab_config), "--target", target),
            f"--target {target}", "not a host of group rp", "rp1, rp2")


@pytest.mark.parametrize(("option", "value"), [
    ("--settle", "nan"), ("--settle", "inf"), ("--settle", "-1"), ("--settle", "-inf"),
    ("--settle", "soon"), ("--probe-interval", "inf"), ("--probe-interval", "nan"),
    ("--probe-interval", "-0.02"), ("--probe-interval", "0"), ("--probe-timeout", "nan"),
    ("--probe-timeout", "1e9"), ("--probe-timeout", "-1"), ("--repeat", "0"),
    ("--repeat", "-3"), ("--repeat", "nan"), ("--repeat", "51"), ("--repeat", "2.5"),
])
def test_numbers_must_be_finite_and_in_range(no_lab_config: Path, option: str,
                                             value: str) -> None:
    refused(run("--config", str(no_lab_config), f"{option}={value}"), option, repr(value))


@pytest.mark.parametrize("option", ["--json", "--pcap", "--png"])
def test_output_in_a_missing_folder_is_refused_before_any_work(
    no_lab_config: Path, tmp_path: Path, option: str
) -> None:
    missing = tmp_path / "no" / "such"
    refused(run("--config", str(no_lab_config), option, str(missing / "out.x")),
            option, f"folder {missing} ")


@pytest.mark.parametrize("option", ["--json", "--pcap", "--png"])
def test_output_that_is_a_folder_or_under_a_file_is_refused(
    no_lab_config: Path, tmp_path: Path, option: str
) -> None:
    refused(run("--config", str(no_lab_config), option, str(tmp_path)), option, "is a folder")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused(run("--config", str(no_lab_config), option, str(a_file / "out.x")),
            option, f"{a_file} ", "is not a folder")


def test_analysis_writes_nothing_when_one_output_is_refused(tmp_path: Path) -> None:
    capture = failover_capture(tmp_path / "c.pcap", "10.5.1.110")
    png = tmp_path / "t.png"
    proc = run("--analyze", str(capture), "--png", str(png),
               "--json", str(tmp_path / "missing" / "r.json"))
    refused(proc, "--json", str(tmp_path / "missing"))
    assert not png.exists()


def _pcap_bytes(tmp_path: Path) -> bytes:
    return failover_capture(tmp_path / "real.pcap", "10.5.1.110").read_bytes()


@pytest.mark.parametrize("content", [
    pytest.param(lambda _p: b"hello, this is text\n" * 20, id="text"),
    pytest.param(lambda _p: bytes(range(256)) * 7, id="random-bytes"),
    pytest.param(lambda _p: b"", id="empty"),
    pytest.param(lambda p: _pcap_bytes(p)[:4], id="magic-only"),
    pytest.param(lambda p: _pcap_bytes(p)[:10], id="cut-in-header-10"),
    pytest.param(lambda p: _pcap_bytes(p)[:20], id="cut-in-header-20"),
    pytest.param(lambda _p: b"\x0a\x0d\x0d\x0a" + bytes(60), id="pcapng-garbage"),
])
def test_analyze_refuses_a_file_that_is_not_a_capture(tmp_path: Path, content) -> None:
    path = tmp_path / "not-a.pcap"
    path.write_bytes(content(tmp_path))
    refused(run("--analyze", str(path), "--vip", "10.5.1.110"), str(path), "capture")


@pytest.mark.parametrize("name", ["missing.pcap", "."])
def test_analyze_refuses_a_missing_file_or_a_folder(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    refused(run("--analyze", str(path), "--vip", "10.5.1.110"), "--analyze", str(path))


@pytest.mark.parametrize("value", ["10.5.1", "10.5.1.300", "::1", "vip", "", "10.5.1.110/24"])
def test_vip_must_be_an_ipv4_address(tmp_path: Path, value: str) -> None:
    capture = failover_capture(tmp_path / "c.pcap", "10.5.1.110")
    refused(run("--analyze", str(capture), "--vip", value), "--vip", "IPv4", repr(value))


def test_vip_without_analyze_is_refused(no_lab_config: Path) -> None:
    refused(run("--config", str(no_lab_config), "--vip", "10.5.1.110"), "--vip", "--analyze")


def test_fault_needing_the_lab_is_refused_on_real_machines(tmp_path: Path) -> None:
    config = write_inventory(tmp_path / "inv", 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["target"] = "real"
    config.write_text(yaml.safe_dump(raw))
    for fault in ("crash", "link"):
        refused(run("--config", str(config), "--fault", fault), f"--fault {fault}", "stop")
    refused(run("--config", str(config), "--group", "web", "--fault", "crash"),
            "--fault crash", "stop, hang")
    refused(run("--config", str(config), "--fault", "stop", "--capture"), "--capture", "--iface")


def test_analyze_takes_the_vip_from_the_inventory_without_a_lab(tmp_path: Path) -> None:
    """The VIP of the analysis is the inventory's (through --config, no lab needed), unless
    --vip says otherwise."""
    capture = failover_capture(tmp_path / "c.pcap", "10.5.1.120")
    config = write_inventory(tmp_path / "inv", 3, {"rp": {"vip": "10.5.1.120"}})
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["lab"]["bridge"] = "tp5nobridge"  # the analysis needs no lab
    config.write_text(yaml.safe_dump(raw))

    def analysed_vip(*args: str) -> str:
        out = tmp_path / "r.json"
        proc = run("--analyze", str(capture), "--json", str(out), *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(out.read_text())["capture"]["failover"]["new_master"] == "10.5.1.112"
        return str(json.loads(out.read_text())["capture"]["vip"])

    assert analysed_vip("--config", str(config)) == "10.5.1.120"
    assert analysed_vip() == "10.5.1.110"  # the repository's inventory
    assert analysed_vip("--config", str(config), "--vip", "10.5.1.99") == "10.5.1.99"
