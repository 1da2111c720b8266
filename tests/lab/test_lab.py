"""The local lab against the real kernel: nodes, isolation, SSH, faults, and teardown."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.core.guard import check_addresses
from tasks.core.settings import load_settings
from tp5lab import paths
from tp5lab.control import Lab, wait_ssh
from tp5lab.inventory_factory import write_inventory
from tp5lab.status import collect_status

pytestmark = pytest.mark.lab


def inside(lab: Lab, host: str, *argv: str) -> str:
    return subprocess.run(lab.nsenter_argv(host, argv), capture_output=True, text=True,
                          check=True).stdout


def test_every_node_is_reachable_over_ssh_with_its_own_hostname(lab: Lab) -> None:
    rows = collect_status(lab, None)
    assert len(rows) == 7
    for row in rows:
        assert row.ssh_ok, f"{row.name}: {row.error}"
        assert row.hostname == f"{row.name}.tp5.b2"
        assert "sshd" in row.services


def test_nodes_have_isolated_files_and_processes(lab: Lab) -> None:
    inside(lab, "web1", "sh", "-c", "echo web1 > /etc/tp5-isolation-probe")
    assert inside(lab, "web1", "cat", "/etc/tp5-isolation-probe").strip() == "web1"
    assert not Path("/etc/tp5-isolation-probe").exists()
    probe = subprocess.run(lab.nsenter_argv("web2", ["cat", "/etc/tp5-isolation-probe"]),
                           capture_output=True, check=False)
    assert probe.returncode != 0
    rows = [line.split() for line in inside(lab, "web2", "ps", "-e", "-o", "pid=,comm=")
            .splitlines() if line.strip()]
    assert rows[0] == ["1", "tini"] and "sshd" in [c for _, c in rows]
    # The node sees its own processes only: not this test runner, not the other nodes' tini.
    assert all(c not in ("pytest", "python", "python3") for _, c in rows)
    assert [c for _, c in rows].count("tini") == 1


def test_host_keys_are_pinned_per_node(lab: Lab) -> None:
    lines = paths.KNOWN_HOSTS.read_text().splitlines()
    assert len(lines) == 7 and len({line.split()[2] for line in lines}) == 7
    assert oct(paths.STATE_DIR.stat().st_mode & 0o777) == "0o700"


def test_up_is_idempotent(lab: Lab) -> None:
    pids = {s.node.name: s.pid1 for s in lab.states()}
    report = lab.up()
    assert (report.created, report.started, report.repaired) == ([], [], [])
    assert {s.node.name: s.pid1 for s in lab.states()} == pids


def test_up_repairs_a_missing_link_and_a_dead_node(lab: Lab) -> None:
    subprocess.run(["ip", "link", "set", lab.node("web3").veth, "down"], check=True)
    lab.crash("db2")
    report = lab.up()
    assert report.repaired == ["web3", "db2"] and report.started == ["db2"]
    assert all(row.ssh_ok for row in collect_status(lab, None))


def test_a_crashed_node_sends_nothing_to_its_peers(lab: Lab) -> None:
    """As a box that loses power: an open connection to it sees no FIN and no RST, only
    silence (its peers must notice by timeouts, like the watcher and NGINX do)."""
    address = lab.node("rp2").address
    assert check_addresses(load_settings().lab_bridge, [address]) == []
    with socket.create_connection((address, 22), timeout=5) as sock:
        assert sock.recv(64).startswith(b"SSH-")
        lab.crash("rp2")
        sock.settimeout(1.5)
        with pytest.raises(TimeoutError):
            sock.recv(64)  # b"" would be a FIN, ConnectionResetError an RST
    lab.restart("rp2")


def test_crash_kills_every_process_and_restart_brings_the_node_back(lab: Lab) -> None:
    lab.crash("rp2")
    assert lab.pid1("rp2") is None
    assert subprocess.run(["ip", "netns", "pids", "tp5-rp2"], capture_output=True,
                          text=True).stdout.strip() == ""
    lab.restart("rp2")
    assert lab.pid1("rp2") is not None
    assert {r.name: r.ssh_ok for r in collect_status(lab, None)}["rp2"]


def test_cut_link_makes_the_node_unreachable_until_restored(lab: Lab) -> None:
    lab.cut_link("web2")
    assert not wait_ssh("10.5.1.12", time.monotonic() + 1.5)
    assert lab.pid1("web2") is not None
    lab.restore_link("web2")
    assert wait_ssh("10.5.1.12", time.monotonic() + 10)


def test_lab_addresses_route_through_the_bridge_only(lab: Lab) -> None:
    assert check_addresses("tp5br0", ["10.5.1.11", "10.5.1.212"]) == []
    problems = check_addresses("tp5br0", ["127.0.0.1"])
    assert problems and "not tp5br0" in problems[0]


def test_status_runbook_prints_a_table(lab: Lab, repo_root: Path) -> None:
    out = subprocess.run([sys.executable, "runbooks/lab.py", "status"], cwd=repo_root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "7/7 reachable over SSH" in out.stdout and "rp1.tp5.b2" in out.stdout


@pytest.mark.lab_rebuild
def test_a_larger_inventory_brings_up_that_many_nodes_and_down_leaves_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    """20 web nodes from a generated inventory; the running lab's 7 nodes are reused."""
    config = write_inventory(tmp_path, web_count=20)
    big = Lab(load_settings(config))
    try:
        report = big.up()
        assert len(report.started) == 17 and report.created == report.started
        rows = collect_status(big, str(config))
        assert len(rows) == 24 and all(r.ssh_ok for r in rows), [r for r in rows if not r.ssh_ok]
    finally:
        big.down()
    netns = json.loads(subprocess.run(["ip", "-j", "netns", "list"], capture_output=True,
                                      text=True).stdout or "[]")
    assert [n for n in netns if n["name"].startswith("tp5-")] == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "tp5" not in links
    assert "tp5lab" not in Path("/proc/mounts").read_text()
    assert not paths.STATE_DIR.exists()
