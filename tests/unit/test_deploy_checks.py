"""Pure parts of the deploy: check parsers, VIP holders, daemon states, plans, tier order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from nornir.core.filter import F

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import load_settings
from tasks.db.sql import DbTarget
from tasks.deploy.checks import (
    RoundRobin,
    host_check_script,
    parse_check_output,
    parse_ip_br,
    problems,
    vip_holders,
)
from tasks.deploy.order import TierGate, prerequisites, reload_after, verify_after
from tasks.deploy.plan import (
    BOOT_SCRIPT,
    ServicePlan,
    parse_daemons,
    parse_host_state,
    plan_host,
    read_state_script,
)
from tasks.deploy.push import DesiredFile
from tasks.deploy.stack import database_line

WEB_OK = """\
@@tp5 up apache2
@@tp5 http
HTTP/1.1 200 OK
Date: Wed, 25 Nov 2026 19:35:14 GMT
X-Served-By: web1.tp5.b2 10.5.1.11
Content-Type: text/plain; charset=utf-8

@@tp5 curl 0
"""

RP_DOWN = """\
@@tp5 up nginx
@@tp5 down keepalived
@@tp5 http
HTTP/1.1 502 Bad Gateway
Server: nginx/1.22.1

@@tp5 curl 0
@@tp5 addr
eth0@if190       UP             10.5.1.111/24 10.5.1.110/24 fe80::4457:83ff:fe4f:b553/64
"""


def plans_of(host: str, is_lab: bool, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch,
             config: Path | None = None) -> list[ServicePlan]:
    """Run the plan_host task (rendering only, no connection) for one host."""
    monkeypatch.setattr("tasks.core.state.SECRETS_DIR", secrets_dir)
    settings = load_settings(config)
    nr = build_nornir(settings, check_lab=False)
    result = nr.filter(F(name=host)).run(task=plan_host, inventory=nr.inventory,
                                         is_lab=is_lab, db=DbTarget.from_settings(settings))
    assert not result.failed, result[host][0].result
    return result[host][0].result


def test_a_healthy_web_check_has_no_problem() -> None:
    check = parse_check_output(WEB_OK)
    assert check.running == {"apache2": True}
    assert (check.http_status, check.served_by, check.curl_rc) == (
        200, "web1.tp5.b2 10.5.1.11", 0)
    assert problems("web", check, "web1.tp5.b2 10.5.1.11") == []
    assert problems("web", check, "web2.tp5.b2 10.5.1.12") == [
        "X-Served-By is 'web1.tp5.b2 10.5.1.11', expected 'web2.tp5.b2 10.5.1.12'"]


def test_a_proxy_check_reports_a_dead_daemon_a_bad_status_and_its_addresses() -> None:
    check = parse_check_output(RP_DOWN)
    assert check.addresses == ["10.5.1.111", "10.5.1.110", "fe80::4457:83ff:fe4f:b553"]
    assert problems("rp", check) == ["keepalived is not running",
                                     "HTTP 502 on the node's address"]


def test_no_http_answer_names_curls_exit_code() -> None:
    check = parse_check_output("@@tp5 up apache2\n@@tp5 http\n@@tp5 curl 7\n")
    assert problems("web", check, "x") == ["no HTTP answer on the node's address (curl exit 7)"]


def test_host_check_script_asks_what_each_tier_needs() -> None:
    web = host_check_script("web", "10.5.1.11", 80)
    assert "pidof apache2" in web and "http://10.5.1.11:80/" in web and "ip -br" not in web
    rp = host_check_script("rp", "10.5.1.111", 80, "eth0")
    assert "pidof keepalived" in rp and "ip -br addr show dev eth0" in rp


def test_vip_holders_and_ip_br() -> None:
    assert parse_ip_br("lo UNKNOWN 127.0.0.1/8 ::1/128\n") == ["127.0.0.1", "::1"]
    addrs = {"rp1": ["10.5.1.111", "10.5.1.110"], "rp2": ["10.5.1.112"]}
    assert vip_holders(addrs, "10.5.1.110") == ["rp1"]
    addrs["rp2"].append("10.5.1.110")
    assert vip_holders(addrs, "10.5.1.110") == ["rp1", "rp2"]


def test_round_robin_counts_and_coverage() -> None:
    rr = RoundRobin(["web1", "web2", "web1"], [])
    assert rr.counts == {"web1": 2, "web2": 1}
    assert rr.covers(["web1", "web2"]) and not rr.covers(["web1", "web2", "web3"])
    assert not RoundRobin(["web1"], ["HTTP 502"]).covers(["web1"])
    # A web host whose deploy failed may still answer; a server outside the tier may not.
    assert rr.covers(["web1"], allowed=["web1", "web2"])
    assert not rr.covers(["web1"], allowed=["web1"])


def test_parse_daemons() -> None:
    assert parse_daemons("up nginx\ndown keepalived\nnoise\n") == {"nginx": True,
                                                                  "keepalived": False}


def test_plans_group_files_per_service_and_add_the_boot_script_in_lab_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rp = plans_of("rp1", True, tmp_path, monkeypatch)
    assert [p.service for p in rp] == ["nginx", "keepalived", "boot"]
    assert rp[0].validate == "nginx -t" and rp[1].daemon == "keepalived"
    boot = rp[2].files[0]
    assert boot.path == BOOT_SCRIPT and boot.mode == "0755"
    assert boot.content.splitlines()[2:] == ["service nginx start", "service keepalived start"]
    web = plans_of("web1", False, tmp_path, monkeypatch)
    assert [p.service for p in web] == ["apache2", "app"]
    assert web[1].validate == "php -l /etc/app_nulle/db.php" and web[1].reload is None
    db_php = web[1].files[0]
    assert db_php.secret and (db_php.mode, db_php.owner) == ("0640", "root:www-data")
    assert db_php.content not in repr(web)  # a printed Result never shows the password
    script = read_state_script(web)
    assert script.count("base64 -w0") == 6 and "pidof apache2" in script
    db = plans_of("db2", True, tmp_path, monkeypatch)
    assert [p.service for p in db] == ["mariadb", "boot"]
    assert db[0].daemon == "mariadbd" and db[0].reload == "service mariadb restart"
    assert "read-only=TRUE" in str(db[0].validate)
    assert db[1].files[0].content.splitlines()[2:] == ["service mariadb start"]


def test_the_web_tiers_db_settings_follow_the_config_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config is honoured: a 'real' config gets the environment's password and no lab
    boot script, whatever the repository's own config.yaml says."""
    from tp5lab.inventory_factory import write_inventory

    config = write_inventory(tmp_path / "real", 3)
    text = config.read_text().replace("target: lab", "target: real")
    config.write_text(text)
    for name, value in (("TP5_DB_APP_PASSWORD", "from-the-env'x"),
                        ("TP5_DB_REPL_PASSWORD", "r"), ("TP5_DB_ADMIN_PASSWORD", "a")):
        monkeypatch.setenv(name, value)
    lab_dir = tmp_path / "lab-secrets"
    real = plans_of("web1", load_settings(config).is_lab, lab_dir, monkeypatch, config)
    assert [p.service for p in real] == ["apache2", "app"]  # no boot script
    assert "$db_pass = 'from-the-env\\'x';" in real[1].files[0].content
    assert not lab_dir.exists()  # the lab's password files were never made
    lab = plans_of("web1", True, lab_dir, monkeypatch)
    password = (lab_dir / "db_app").read_text().strip()
    assert f"$db_pass = '{password}';" in lab[1].files[0].content


def test_parse_host_state_splits_files_daemons_and_check() -> None:
    plans = [ServicePlan("nginx", [DesiredFile("/a"), DesiredFile("/b")], None, None, "nginx"),
             ServicePlan("boot", [DesiredFile("/c")], None, None, None)]
    output = ("F 644 root:root\naGVsbG8K\nA\nL /x\n@@daemons\ndown nginx\n"
              "@@check\n@@tp5 up nginx\n")
    state = parse_host_state(plans, output)
    assert [[c.state for c in files] for files in state.files] == [["file", "absent"], ["link"]]
    assert state.files[0][0].content == "hello\n" and state.files[1][0].link_target == "/x"
    assert state.running == {"nginx": False}
    assert state.check_output == "@@tp5 up nginx\n"


def test_the_tier_gate_orders_db_web_rp_and_skips_absent_tiers() -> None:
    gate = TierGate({"web": 1, "rp": 1})
    assert gate.wait("web", timeout=1) < 0.1  # no db host in this run
    seen: list[str] = []

    def proxy() -> None:
        gate.wait("rp", timeout=5)
        seen.append("rp")

    thread = threading.Thread(target=proxy)
    thread.start()
    time.sleep(0.1)
    seen.append("web")
    gate.finished("web")
    thread.join(5)
    assert seen == ["web", "rp"]


def test_what_waits_for_which_tier() -> None:
    assert prerequisites("web", "apache2") == ()
    assert prerequisites("web", "app") == ("db",)
    # A serving NGINX waits for the tiers it sends traffic to; a proxy that runs nothing yet
    # goes live at once (its VRRP election overlaps the web and db tiers' work)...
    assert prerequisites("rp", "nginx", running=True) == ("db", "web")
    assert prerequisites("rp", "nginx", running=False) == ()
    assert prerequisites("rp", "keepalived", running=True) == ()
    assert prerequisites("db", "mariadb") == ()
    # ...then NGINX is reloaded once they are done, and checked after them.
    assert reload_after("rp", "nginx") == ("db", "web")
    assert reload_after("rp", "keepalived") == reload_after("web", "apache2") == ()
    assert verify_after("rp") == ("db", "web") and verify_after("web") == ()


def test_the_tier_gate_says_when_tiers_are_done_without_waiting() -> None:
    gate = TierGate({"db": 1, "web": 2})
    assert gate.done(()) and not gate.done(("db",))
    gate.finished("db")
    assert gate.done(("db",)) and not gate.done(("db", "web"))
    gate.finished("web")
    gate.finished("web")
    assert gate.done(("db", "web", "rp"))


def test_the_tier_gate_refuses_to_go_on_out_of_order_after_its_timeout() -> None:
    gate = TierGate({"db": 1, "web": 1})
    with pytest.raises(TimeoutError, match="the db tier did not finish"):
        gate.wait_for(("db",), timeout=0.05)


def test_vip_check_without_preemption_accepts_any_single_holder() -> None:
    from tasks.deploy.checks import VipCheck

    assert VipCheck("10.5.1.110", "rp1", ["rp1"], 0.0).ok
    assert not VipCheck("10.5.1.110", "rp1", ["rp2"], 0.0).ok
    assert VipCheck("10.5.1.110", None, ["rp2"], 0.0).ok
    assert not VipCheck("10.5.1.110", None, ["rp1", "rp2"], 0.0).ok
    assert not VipCheck("10.5.1.110", None, [], 0.0).ok


def test_the_database_check_line() -> None:
    seen = {"db2": {"role": "replica", "marker_delay_s": 0.0021,
                    "write_refused": "(1290) read-only"},
            "db1": {"role": "primary", "gtid_binlog_pos": "0-1-9"}}
    assert database_line(seen, {}, []) == (
        "database: db1 primary writable, binlog at 0-1-9; db2 read the marker after 2.1 ms "
        "and refused a write ((1290) read-only)")
    line = database_line({}, {"db2": "db2: a write on the replica was accepted"}, ["db1"])
    assert line == ("database: db2: db2: a write on the replica was accepted; "
                    "db1: not checked (its deploy failed)")
