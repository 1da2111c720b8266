"""The web-tier drill against the real stack in the local lab: each fault on web1, judged
from the runbook's JSON against the timeouts NGINX really runs with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tasks.core.settings import REPO_ROOT
from tasks.drill.nginx_site import parse_site
from tp5lab.control import Lab

pytestmark = pytest.mark.lab

SITE = "/etc/nginx/conf.d/app_nulle.conf"
WEB1 = "10.5.1.11:80"


def web_drill(tmp_path: Path, fault: str) -> tuple[int, str, dict[str, Any]]:
    out = tmp_path / "drill.json"
    proc = subprocess.run(
        [sys.executable, "runbooks/failover_drill.py", "--group", "web", "--fault", fault,
         "--json", str(out), "--png", str(tmp_path / "drill.png")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    summary = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, summary


def in_node(lab: Lab, node: str, *argv: str) -> str:
    return subprocess.run(lab.nsenter_argv(node, argv), capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("fault", ["crash", "stop", "hang"])
def test_no_client_request_fails_and_web1_comes_back(
    deployed: object, lab: Lab, tmp_path: Path, fault: str
) -> None:
    code, output, summary = web_drill(tmp_path, fault)
    assert code == 0, output
    exp = summary["experiments"][0]
    assert exp["ok"] and exp["problems"] == [] and exp["target"] == "web1"
    # The drill judged against what NGINX runs with, and probed above that bound.
    settings = exp["nginx_settings"]
    deployed_site = parse_site(in_node(lab, "rp1", "cat", SITE), WEB1)
    assert (settings["connect_s"], settings["read_s"], settings["fail_timeout_s"]) == (
        deployed_site.connect_s, deployed_site.read_s, deployed_site.fail_timeout_s)
    bound = max(deployed_site.connect_s, deployed_site.read_s) + 1.0
    assert settings["latency_bound_s"] == bound and exp["probe_timeout_s"] > bound
    # No failed request in any phase; none slower than the bound.
    phases = exp["phases"]
    assert [phases[p]["failed"] for p in ("before", "during", "after")] == [0, 0, 0]
    assert all(phases[p]["requests"] > 0 for p in phases)
    assert phases["during"]["max_s"] <= bound
    # NGINX saw web1 fail after the fault, retried each failed try elsewhere, stopped
    # sending to it, and sent to it again (answered) after the restore.
    nginx = exp["nginx"]
    assert nginx["failed_tries"] >= 1 and nginx["retried"] == nginx["failed_tries"]
    assert nginx["failed_at_proxy"] == 0
    assert nginx["stopped"] <= nginx["marked_down"]
    assert nginx["marked_down"] < exp["restore_time"] <= exp["restored_time"] <= nginx["resumed"]
    # web1 is back in rotation: it answered clients after the restore.
    assert exp["back_in_rotation_s"] is not None
    assert "web1.tp5.b2" in phases["after"]["servers"]
    failed_statuses = {t["status"] for t in nginx["tries"]
                       if t["status"] != 200 and exp["fault_time"] <= t["sent"]}
    slowest = phases["during"]["max_s"]
    if fault == "hang":
        # The kernel accepted, the frozen Apache never answered: NGINX waited the read
        # timeout, then another server answered.
        assert slowest >= deployed_site.read_s
        assert failed_statuses == {504}
        assert "T" not in in_node(lab, "web1", "ps", "-o", "stat=", "-C", "apache2")
    elif fault == "stop":
        assert failed_statuses <= {502, None}  # refused at once (or closed mid-request)
    else:
        assert failed_statuses <= {502, 504, None}
    assert in_node(lab, "web1", "pidof", "apache2").split()
    # Cookie-jar clients beside the probes: sessions in the database, none lost, each client
    # counted on while answered by several web servers.
    sessions = exp["sessions"]
    assert exp["session_store"] == "db"
    assert sessions["clients"] == 3 and sessions["lost"] == 0 and sessions["restarts"] == []
    assert sessions["answers"] > 3
    assert all(len(servers) >= 2 for servers in sessions["servers"].values())
    if fault == "crash":
        assert any(a["server"] == "web1.tp5.b2" and a["time"] < exp["fault_time"]
                   for a in exp["session_answers"] if a["ok"])
    assert (tmp_path / "drill.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
