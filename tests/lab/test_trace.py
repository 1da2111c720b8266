"""runbooks/trace.py against the real stack: request paths read from the nodes' logs, and
the live interleaved tail of the access logs (and that it leaves no tail behind)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DeployRun

from tasks.core.settings import REPO_ROOT
from tasks.deploy.checks import check_round_robin
from tp5lab.control import Lab

pytestmark = pytest.mark.lab

VIP = "10.5.1.110"
WEBS = ["web1", "web2", "web3"]
PROXIES = ["rp1", "rp2"]
# `12:34:56.789  web1  <log line, starting with its epoch time>`
FOLLOWED = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}  (\S+)\s+(\d+\.\d+) ([0-9a-f]{32}) (.*)$")


def inside(lab: Lab, host: str, command: str) -> str:
    return subprocess.run(lab.nsenter_argv(host, ["sh", "-c", command]), capture_output=True,
                          text=True, check=True).stdout


def vip_holders(lab: Lab) -> list[str]:
    return [rp for rp in PROXIES if f" {VIP}/" in inside(lab, rp, "ip -br addr show dev eth0")]


def remote_tails(lab: Lab) -> dict[str, str]:
    """Any tail (or its remote timeout) still running on a proxy or web server."""
    found = {}
    for node in PROXIES + WEBS:
        out = inside(lab, node, "pgrep -a -x tail; pgrep -a -x timeout; true").strip()
        if out:
            found[node] = out
    return found


SYSTEM_PYTHON = getattr(sys, "_base_executable", None) or sys.executable

def follow(*args: str, python: str = sys.executable) -> subprocess.Popen[str]:
    """Start trace.py --follow and wait for its 'following N log(s)' line (tails started)."""
    proc = subprocess.Popen([python, "runbooks/trace.py", "--follow", *args],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if re.match(r"following \d+ log\(s\)", line):
            return proc
    proc.wait(timeout=30)
    pytest.fail(f"--follow never started (exit {proc.returncode}): {proc.stderr.read()}")


def test_requests_are_traced_from_the_logs(deployed: DeployRun, tmp_path: Path,
                                           lab: Lab) -> None:
    out = tmp_path / "trace.json"
    proc = subprocess.run([sys.executable, "runbooks/trace.py", "--requests", "6", "--json",
                           str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    requests = report["requests"]
    assert report["ok"] and len(requests) == 6 and report["problems"] == {}
    holders = vip_holders(lab)
    assert len(holders) == 1
    for req in requests:
        assert req["complete"], req
        assert req["proxy"]["node"] == holders[0]
        # The web server's name comes from its own Apache line, in its own log.
        assert req["web"]["node"] == req["web"]["log_of"] and req["web"]["status"] == 200
        assert req["proxy"]["upstreams"][-1]["node"] == req["web"]["node"]
        assert req["db"]["node"] == "db1" and req["db"]["outcome"] == "written"
        assert req["path"] == f"{holders[0]} -> {req['web']['node']} -> db1"
        line = f"{req['id']}  {req['path']}  (200, "
        assert line in proc.stdout
    order = [r["web"]["node"] for r in requests]
    assert sorted(order[:3]) == WEBS and order[3:] == order[:3], order
    visits = [r["db"]["visit"] for r in requests]
    assert visits == sorted(visits) and len(set(visits)) == 6


def test_the_app_never_logs_a_request_id_it_did_not_check(deployed: DeployRun,
                                                          lab: Lab) -> None:
    conn = http.client.HTTPConnection("10.5.1.11", 80, timeout=5)
    conn.request("GET", "/", headers={"X-Request-Id": "forged id=1 node=evil"})
    assert conn.getresponse().status == 200
    conn.close()
    last = inside(lab, "web1", "grep ' trace request=' /var/log/apache2/app_nulle_error.log "
                               "| tail -n 1")
    assert "trace request=- db-write node=db1.tp5.b2 " in last and "evil" not in last


def test_follow_interleaves_the_access_logs_in_time_order(deployed: DeployRun,
                                                           lab: Lab) -> None:
    proc = follow("--duration", "3")
    sent = check_round_robin(VIP, 6, bridge="tp5br0")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    assert not sent.errors and len(sent.order) == 6
    lines = [m for m in map(FOLLOWED.match, stdout.splitlines()) if m]
    times = [float(m.group(2)) for m in lines]
    assert times == sorted(times)
    by_node: dict[str, set[str]] = {}
    for m in lines:
        by_node.setdefault(m.group(1), set()).add(m.group(3))
        if m.group(1) in WEBS:
            assert m.group(4).endswith(f" {m.group(1)}.tp5.b2"), m.group(0)
    (holder,) = vip_holders(lab)
    assert set(by_node) == {holder, *WEBS}, by_node
    assert len(by_node[holder]) == 6
    assert set().union(*(by_node[w] for w in WEBS)) == by_node[holder]
    assert "end of --duration" in stdout
    assert remote_tails(lab) == {}


# The system's interpreter too (issue 15): the runbook continues in .venv by exec, so the
# signal reaches it.
@pytest.mark.parametrize("python", [sys.executable, SYSTEM_PYTHON], ids=["venv", "system"])
def test_follow_stops_on_ctrl_c_and_cleans_up(deployed: DeployRun, lab: Lab, python: str,
                                              ) -> None:
    proc = follow("--group", "web", "--duration", "60", python=python)
    assert set(remote_tails(lab)) == set(WEBS)
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail(f"--follow still ran 30 s after Ctrl-C:\n{stdout[-3000:]}\n{stderr}")
    assert proc.returncode == 0, stdout + stderr
    assert "(Ctrl-C)" in stdout and "Traceback" not in stderr
    assert remote_tails(lab) == {}
