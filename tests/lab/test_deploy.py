"""runbooks/deploy.py against the local lab: first deploy, idempotence, dry-run, a rejected
candidate that leaves the previous config serving, group filter, and an unreachable host."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DeployRun

from tasks.core.nornir_build import build_nornir
from tasks.deploy import host as deploy_host_module
from tasks.deploy.checks import check_round_robin
from tasks.deploy.host import TierGate, deploy_node
from tasks.deploy.report import report_of
from tp5lab.control import Lab
from tp5lab.inventory_factory import write_inventory

pytestmark = pytest.mark.lab

VIP = "10.5.1.110"
WEBS = ["web1.tp5.b2", "web2.tp5.b2", "web3.tp5.b2"]
NGINX_CONF = "/etc/nginx/conf.d/app_nulle.conf"
Deploy = Callable[..., DeployRun]


def inside(lab: Lab, host: str, command: str) -> str:
    return subprocess.run(lab.nsenter_argv(host, ["sh", "-c", command]), capture_output=True,
                          text=True, check=True).stdout


def test_first_deploy_brings_fresh_nodes_to_a_round_robin_behind_the_vip(
    deployed: DeployRun,
) -> None:
    hosts = deployed.summary["hosts"]
    for name in ("web1", "web2", "web3", "rp1", "rp2"):
        assert hosts[name]["status"] == "changed", hosts[name]
        assert hosts[name]["timings"]["verify"] > 0
    assert deployed.summary["vip"]["holders"] == ["rp1"]
    rr = deployed.summary["round_robin"]
    assert rr["ok"] and rr["counts"] == dict.fromkeys(WEBS, 3), rr
    assert "VIP 10.5.1.110 on rp1" in deployed.stdout and "round-robin" in deployed.stdout
    order = check_round_robin(VIP, 6, bridge="tp5br0").order
    assert len(set(order[:3])) == 3 and order[3:] == order[:3], order


def test_a_second_deploy_changes_nothing(deployed: DeployRun, deploy: Deploy) -> None:
    run = deploy()
    assert run.returncode == 0, run.stdout + run.stderr
    statuses = {h: v["status"] for h, v in run.summary["hosts"].items()}
    assert {s for s in statuses.values()} <= {"unchanged", "skipped"}, statuses
    assert all(not v["changed"] for v in run.summary["hosts"].values())


def test_dry_run_after_an_inventory_change_shows_the_diff_and_changes_nothing(
    deployed: DeployRun, deploy: Deploy, lab: Lab, tmp_path: Path
) -> None:
    before = inside(lab, "rp1", f"cat {NGINX_CONF}")
    config = write_inventory(tmp_path, web_count=3, changes={"rp": {"lb_affinity": "ip_hash"}})
    run = deploy("--config", str(config), "--dry-run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "+    ip_hash;" in run.stdout
    assert run.status("rp1") == run.status("rp2") == "changed"
    assert run.status("web1") == "unchanged"
    assert "round_robin" not in run.summary
    assert inside(lab, "rp1", f"cat {NGINX_CONF}") == before
    again = deploy("--group", "rp")
    assert [again.status(h) for h in ("rp1", "rp2")] == ["unchanged", "unchanged"]


def test_a_broken_template_fails_validation_and_the_previous_config_keeps_serving(
    deployed: DeployRun, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = inside(lab, "rp1", f"cat {NGINX_CONF}")
    pid = inside(lab, "rp1", "cat /run/nginx.pid")
    real_render = deploy_host_module.render_template

    def broken(name: str, /, **context: object) -> str:
        text = real_render(name, **context)
        return text + "this_is_not_a_directive on;\n" if name == "nginx/site.conf.j2" else text

    monkeypatch.setattr(deploy_host_module, "render_template", broken)
    nr = build_nornir(groups=["rp"])
    full = build_nornir()
    results = nr.run(task=deploy_node, inventory=full.inventory, gate=TierGate({"rp": 2}))
    for name in ("rp1", "rp2"):
        report = report_of(nr.inventory.hosts[name], results[name])
        assert report.status == "failed"
        assert "`nginx -t` rejected" in report.error and "previous files restored" in report.error
        assert "this_is_not_a_directive" in report.error
    nr.close_connections()
    full.close_connections()
    assert inside(lab, "rp1", f"cat {NGINX_CONF}") == before
    assert inside(lab, "rp1", "cat /run/nginx.pid") == pid
    assert inside(lab, "rp1", "ls /etc/nginx/conf.d") == "app_nulle.conf\n"
    rr = check_round_robin(VIP, 6, bridge="tp5br0")
    assert rr.covers(WEBS), rr


def test_group_rp_touches_only_the_proxies(deployed: DeployRun, deploy: Deploy, lab: Lab) -> None:
    inside(lab, "web1", "echo '# drift' >> /etc/apache2/ports.conf")
    inside(lab, "rp2", f"echo '# drift' >> {NGINX_CONF}")
    run = deploy("--group", "rp")
    assert run.returncode == 0, run.stdout + run.stderr
    assert set(run.summary["hosts"]) == {"rp1", "rp2"}
    assert (run.status("rp1"), run.status("rp2")) == ("unchanged", "changed")
    assert "# drift" not in inside(lab, "rp2", f"cat {NGINX_CONF}")
    assert "# drift" in inside(lab, "web1", "cat /etc/apache2/ports.conf")
    fixed = deploy("--host", "web1")
    assert fixed.status("web1") == "changed" and fixed.returncode == 0


def test_an_unreachable_host_fails_alone_within_a_bounded_time(
    deployed: DeployRun, deploy: Deploy, lab: Lab
) -> None:
    inside(lab, "web2", "echo '# drift' >> /etc/apache2/ports.conf")
    lab.cut_link("web3")
    try:
        run = deploy()
    finally:
        lab.restore_link("web3")
    assert run.returncode == 1
    assert run.status("web3") == "failed"
    assert "unreachable" in run.summary["hosts"]["web3"]["error"]
    assert run.summary["failed"] == ["web3"]
    assert run.status("web2") == "changed"
    assert run.summary["vip"]["ok"]
    assert run.summary["round_robin"]["counts"].keys() == {"web1.tp5.b2", "web2.tp5.b2"}
    assert run.seconds < 20, run.seconds
    assert "web3" in run.stdout and "unreachable" in run.stdout
