"""`lab.py up` names the app on this machine (/etc/hosts block) and converges the lab to the
inventory: nodes that left it are removed.

Network safety: a name is only resolved once it is in the lab's block of /etc/hosts (so the
lookup never leaves the file), IPv4 only (`getent ahostsv4`, `curl -4`: `getent hosts` would
ask DNS for an IPv6 address first), and only lab addresses behind the bridge are contacted.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_lab

from tasks.core.guard import check_addresses
from tp5lab import etc_hosts, paths
from tp5lab.control import Lab, wait_ssh
from tp5lab.inventory_factory import write_inventory

pytestmark = pytest.mark.lab

APP = "app_nulle.tp5.b2"
VIP = "10.5.1.110"
BRIDGE = "tp5br0"


def block_markers() -> list[str]:
    return [line for line in etc_hosts.HOSTS_FILE.read_text(errors="replace").splitlines()
            if line.startswith(("# BEGIN tp5ha lab", "# END tp5ha lab"))]


def resolve(name: str) -> str:
    """The IPv4 address getent gives for name, once the lab's block lists it."""
    assert f"{VIP}\t{name}" in etc_hosts.listed(), f"{name} is not in the lab's /etc/hosts block"
    out = subprocess.run(["getent", "ahostsv4", name], capture_output=True, text=True, timeout=5)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def answers_ping(address: str, timeout: float = 1.0) -> bool:
    """One ICMP echo out of the lab bridge only (refused unless the address is behind it)."""
    assert check_addresses(BRIDGE, [address]) == []
    ident = os.getpid() & 0xFFFF
    body = struct.pack("!HH", ident, 1) + b"tp5lab"
    packet = struct.pack("!BBH", 8, 0, _checksum(b"\x08\x00\x00\x00" + body)) + body
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, BRIDGE.encode())
        sock.sendto(packet, (address, 0))
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (source, _) = sock.recvfrom(2048)
            except TimeoutError:
                return False
            icmp = data[(data[0] & 0x0F) * 4:]
            if source == address and icmp[0] == 0 and icmp[4:6] == body[:2]:
                return True
    return False


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status  # dead, waiting for a parent to reap it


def test_up_names_the_app_after_the_vip_here_and_in_the_nodes(lab: Lab) -> None:
    assert resolve(APP) == VIP
    assert check_addresses(BRIDGE, [VIP]) == []
    assert len(block_markers()) == 2 and str(lab.settings.config_file) in block_markers()[0]
    inside = subprocess.run(lab.nsenter_argv("web1", ["getent", "ahostsv4", APP]),
                            capture_output=True, text=True, check=True).stdout
    assert inside.split()[0] == VIP


def test_the_app_answers_by_name_once_deployed(deployed: object) -> None:
    assert resolve(APP) == VIP and check_addresses(BRIDGE, [VIP]) == []
    served = set()
    for _ in range(6):
        out = subprocess.run(["curl", "-4", "--noproxy", "*", "-s", "-D", "-", "-o", "/dev/null",
                              "--max-time", "5", f"http://{APP}/"],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0 and out.stdout.startswith("HTTP/1.1 200"), out
        match = re.search(r"^X-Served-By: (web\d+)\.tp5\.b2 10\.5\.1\.\d+\r?$", out.stdout, re.M)
        assert match, out.stdout
        served.add(match.group(1))
    assert served <= {"web1", "web2", "web3"} and len(served) >= 2  # through the proxy's pool


def test_up_removes_the_nodes_that_left_the_inventory(lab: Lab, tmp_path: Path) -> None:
    try:
        check_scale_down(tmp_path)
    finally:
        back = run_lab("up")  # the repository's inventory again, also when a check failed
    assert back.returncode == 0 and "removed" not in back.stdout, back.stdout + back.stderr
    assert str(lab.settings.config_file) in block_markers()[0] and len(block_markers()) == 2
    assert all(state.pid1 for state in lab.states())


def check_scale_down(tmp_path: Path) -> None:
    """Up with 4 webs, then with 3: web4 is removed and said so; its address is free."""
    four = write_inventory(tmp_path / "four", 4)
    grown = run_lab("up", config=four)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert "removed" not in grown.stdout and "8/8 reachable over SSH" in grown.stdout
    assert str(four) in block_markers()[0] and len(block_markers()) == 2
    pids = [int(p) for p in subprocess.run(["ip", "netns", "pids", "tp5-web4"],
                                           capture_output=True, text=True).stdout.split()]
    assert pids and answers_ping("10.5.1.14") and wait_ssh("10.5.1.14", time.monotonic() + 5)

    three = write_inventory(tmp_path / "three", 3)
    shrunk = run_lab("up", config=three)
    assert shrunk.returncode == 0, shrunk.stdout + shrunk.stderr
    assert "removed web4" in shrunk.stdout and "7/7 reachable over SSH" in shrunk.stdout
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "tp5-web4" not in netns and "tp5v-web4" not in links and "tp5-web3" in netns
    assert all(gone(pid) for pid in pids)
    assert not paths.node_dir("web4").exists() and paths.node_dir("web3").exists()
    assert answers_ping("10.5.1.13")  # the same probe gets an answer from a node still there
    assert not answers_ping("10.5.1.14") and not wait_ssh("10.5.1.14", time.monotonic() + 1.5)

    # Grown again at once: the new web4 answers although the controller's neighbour entry for
    # its address was made for the old one (a node's MAC follows its address, not chance).
    again = run_lab("up", config=four)
    assert again.returncode == 0 and "8/8 reachable over SSH" in again.stdout, \
        again.stdout + again.stderr
    assert wait_ssh("10.5.1.14", time.monotonic() + 5)
    assert run_lab("up", config=three).returncode == 0


@pytest.mark.lab_rebuild
def test_no_hosts_writes_nothing_and_down_restores_the_hosts_file(lab: Lab) -> None:
    assert run_lab("down").returncode == 0
    before = etc_hosts.HOSTS_FILE.read_bytes()
    assert block_markers() == []

    kept = run_lab("up", "--no-hosts")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "/etc/hosts left alone (--no-hosts)" in kept.stdout
    assert etc_hosts.HOSTS_FILE.read_bytes() == before

    for _ in range(2):  # a second up replaces the block, never adds one
        named = run_lab("up")
        assert named.returncode == 0, named.stdout + named.stderr
        assert f"/etc/hosts: {APP} -> {VIP}" in named.stdout
        assert len(block_markers()) == 2 and resolve(APP) == VIP
    assert etc_hosts.HOSTS_FILE.read_bytes().startswith(before)

    # Half down: a node crashed, the bridge gone; down still removes the block.
    lab.crash("web1")
    subprocess.run(["ip", "link", "del", BRIDGE], check=True)
    assert run_lab("down").returncode == 0
    assert etc_hosts.HOSTS_FILE.read_bytes() == before
    assert not paths.STATE_DIR.exists()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "tp5-" not in netns
