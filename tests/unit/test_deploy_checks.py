"""Pure parts of the deploy: check parsers, VIP holders, daemon states, plans, tier gate."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from nornir.plugins.inventory import SimpleInventory

from tasks.deploy.checks import (
    RoundRobin,
    check_command,
    parse_check_output,
    parse_ip_br,
    problems,
    vip_holders,
)
from tasks.deploy.host import (
    BOOT_SCRIPT,
    TierGate,
    parse_daemons,
    plan_host,
    prerequisites,
    read_state_script,
)
from tasks.deploy.push import DesiredFile

INVENTORY = Path(__file__).resolve().parents[2] / "inventory"

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


def inventory():  # noqa: ANN201
    return SimpleInventory(str(INVENTORY / "hosts.yaml"), str(INVENTORY / "groups.yaml"),
                           str(INVENTORY / "defaults.yaml")).load()


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


def test_check_command_asks_what_each_tier_needs() -> None:
    web = check_command("web", "10.5.1.11", 80)
    assert "pidof apache2" in web and "http://10.5.1.11:80/" in web and "ip -br" not in web
    rp = check_command("rp", "10.5.1.111", 80, "eth0")
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


def test_plans_group_files_per_service_and_add_the_boot_script_in_lab_mode() -> None:
    inv = inventory()
    rp = plan_host(inv.hosts["rp1"], inv, lab_mode=True)
    assert [p.service for p in rp] == ["nginx", "keepalived", "boot"]
    assert rp[0].validate == "nginx -t" and rp[1].daemon == "keepalived"
    boot = rp[2].files[0]
    assert boot.path == BOOT_SCRIPT and boot.mode == "0755"
    assert boot.content.splitlines()[2:] == ["service nginx start", "service keepalived start"]
    extra = DesiredFile("/etc/app_nulle/db.php", "<?php\n", mode="0640", owner="root:www-data")
    web = plan_host(inv.hosts["web1"], inv, lab_mode=False, extra=[extra])
    assert [p.service for p in web] == ["apache2", "app"]
    assert web[1].validate == "php -l /etc/app_nulle/db.php" and web[1].reload is None
    script = read_state_script(web)
    assert script.count("base64 -w0") == 6 and "pidof apache2" in script


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


def test_apache_goes_live_at_once_db_settings_after_the_db_tier_proxies_last() -> None:
    assert prerequisites("web", "apache2") == ()
    assert prerequisites("web", "app") == ("db",)
    assert prerequisites("rp", "nginx") == ("db", "web")
    assert prerequisites("db", "mariadb") == ()


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
