"""runbooks/deploy.py against the local lab: first deploy, idempotence, dry-run, a rejected
candidate that leaves the previous config serving, group filter, an unreachable host, and a
database check that fails the deploy."""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DeployRun
from rich.console import Console

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import load_settings
from tasks.core.state import SECRETS_DIR
from tasks.db.sql import DbTarget
from tasks.deploy import plan as plan_module
from tasks.deploy.checks import check_round_robin
from tasks.deploy.host import Stack, deploy_host
from tasks.deploy.order import TierGate
from tasks.deploy.report import report_of
from tasks.deploy.stack import DeployOptions, deploy_stack
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
    # One line per host as it finishes, and nothing from the checks' later Nornir runs.
    finished = re.findall(r"\b\d+\.\d\ds (\w+) +(changed|unchanged)\b", deployed.stdout)
    assert sorted(name for name, _ in finished) == sorted(hosts), deployed.stdout
    assert "failed" not in deployed.stdout.lower(), deployed.stdout
    assert deployed.summary["vip"]["holders"] == ["rp1"]
    rr = deployed.summary["round_robin"]
    assert rr["ok"] and rr["counts"] == dict.fromkeys(WEBS, 3), rr
    assert "VIP 10.5.1.110 on rp1" in deployed.stdout and "round-robin" in deployed.stdout
    order = check_round_robin(VIP, 6, bridge="tp5br0").order
    assert len(set(order[:3])) == 3 and order[3:] == order[:3], order


def test_the_deploy_runs_the_database_check(deployed: DeployRun) -> None:
    database = deployed.summary["database"]
    assert database["ok"] and database["errors"] == {} and database["skipped"] == []
    replica = database["hosts"]["db2"]
    assert replica["role"] == "replica" and replica["marker_delay_s"] < 5
    assert "--read-only" in replica["write_refused"]
    assert database["hosts"]["db1"]["role"] == "primary"
    flat = " ".join(deployed.stdout.split())  # rich wraps long lines
    assert re.search(r"ok database: db1 primary writable, binlog at \S+; db2 read the "
                     r"marker after \d+\.\d ms and refused a write", flat), flat


def test_a_second_deploy_changes_nothing(deployed: DeployRun, deploy: Deploy) -> None:
    run = deploy()
    assert run.returncode == 0, run.stdout + run.stderr
    statuses = {h: v["status"] for h, v in run.summary["hosts"].items()}
    assert {s for s in statuses.values()} <= {"unchanged", "skipped"}, statuses
    assert all(not v["changed"] for v in run.summary["hosts"].values())
    assert "failed" not in run.stdout.lower(), run.stdout
    assert run.summary["database"]["ok"] and run.summary["round_robin"]["ok"]
    # One admin connection per db node for the whole run: the SQL steps, each node's check
    # and the database check share it.
    assert run.summary["db_admin_connections"] == 2, run.summary


def test_verbose_prints_every_step_but_never_the_password(
    deployed: DeployRun, deploy: Deploy, lab: Lab
) -> None:
    inside(lab, "web1", "echo '# drift' >> /etc/app_nulle/db.php; "
                        "echo '<?php // drift' >> /var/www/app_nulle/index.php")
    run = deploy("--host", "web1", "--verbose", "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    for step in ("deploy_host", "plan_host", "read_host_state", "push apache2", "push app",
                 "check_host"):
        assert step in run.stdout, step
    assert "# secret content differs (not shown)" in run.stdout
    password = (SECRETS_DIR / "db_app").read_text().strip()
    assert password not in run.stdout + run.stderr


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


@pytest.fixture
def broken_nginx_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NGINX site renders with a line `nginx -t` rejects (for this test only)."""
    real_render = plan_module.render_file

    def broken(task, template: str, context: dict, secret: bool = False):  # noqa: ANN001, ANN202
        result = real_render(task, template, context, secret)
        if template == "nginx/site.conf.j2":
            result.content += "this_is_not_a_directive on;\n"
        return result

    monkeypatch.setattr(plan_module, "render_file", broken)


def test_a_broken_template_fails_validation_and_the_previous_config_keeps_serving(
    deployed: DeployRun, lab: Lab, broken_nginx_template: None
) -> None:
    before = inside(lab, "rp1", f"cat {NGINX_CONF}")
    pid = inside(lab, "rp1", "cat /run/nginx.pid")
    nr = build_nornir(groups=["rp"])
    full = build_nornir()
    stack = Stack(full.inventory, DbTarget.from_settings(load_settings()), TierGate({"rp": 2}))
    results = nr.run(task=deploy_host, stack=stack)
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


def test_when_both_proxies_fail_validation_the_checks_read_what_still_serves(
    deployed: DeployRun, lab: Lab, broken_nginx_template: None
) -> None:
    """Both pushes refused: the previous config stays live, and the VIP and round-robin
    checks say so (VIP on rp1, every web server answering), not "held by no proxy"."""
    outcome = deploy_stack(DeployOptions(groups=("rp",), vip_wait=5.0), Console(file=io.StringIO()))
    assert sorted(outcome.failed) == ["rp1", "rp2"] and not outcome.ok
    vip_line = next(c for c in outcome.lines if "VIP" in c.line)
    assert vip_line.ok and "on rp1" in vip_line.line, vip_line
    round_robin = next(c for c in outcome.lines if c.line.startswith("round-robin"))
    assert round_robin.ok, round_robin
    assert outcome.checks["vip"]["waited"] < 5.0  # read at once, not waited out


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


def test_a_writable_replica_fails_the_deploy(deployed: DeployRun, deploy: Deploy,
                                             lab: Lab) -> None:
    # The controller's admin account cannot do this (no READ_ONLY ADMIN): root on the node.
    inside(lab, "db2", "mariadb -e 'SET GLOBAL read_only = OFF'")
    try:
        run = deploy("--group", "db")
    finally:
        inside(lab, "db2", "mariadb -e 'SET GLOBAL read_only = ON'")
    assert run.returncode == 1, run.stdout
    assert run.status("db2") == "failed" and run.status("db1") == "unchanged"
    assert "the replica is not read-only" in run.summary["hosts"]["db2"]["error"]
    assert not run.summary["database"]["ok"] and run.summary["database"]["skipped"] == ["db2"]
    flat = " ".join(run.stdout.split())
    assert re.search(r"FAILED database: .*db2: not checked \(its deploy failed\)", flat)
    again = deploy("--group", "db")
    assert again.returncode == 0 and again.summary["database"]["ok"], again.stdout
