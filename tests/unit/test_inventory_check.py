"""Unit tests of the up-front inventory check: one test per kind of problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from inventory_files import REPO, Data, edited, fields, run

from tasks.core.inventory_check import InventoryProblem, check_inventory

INVENTORY = REPO / "inventory"


def test_real_inventory_has_no_problem() -> None:
    problems = check_inventory(
        INVENTORY / "hosts.yaml", INVENTORY / "groups.yaml", INVENTORY / "defaults.yaml"
    )
    assert problems == []


def test_problem_str_names_file_host_and_field() -> None:
    problem = InventoryProblem("inventory/hosts.yaml", "rp2", "vrrp_priority", "bad")
    assert str(problem) == "inventory/hosts.yaml: host rp2: field vrrp_priority: bad"
    grouped = InventoryProblem("inventory/groups.yaml", None, "vip", "bad", group="rp")
    assert str(grouped) == "inventory/groups.yaml: group rp: field vip: bad"


def test_missing_address(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web2"].pop("hostname"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("web2", "hostname")}
    assert "missing" in problems[0].message
    assert problems[0].file.endswith("hosts.yaml")


@pytest.mark.parametrize("bad", ["10.5.1", "10.5.1.300", "web1.tp5.b2", "fe80::1"])
def test_malformed_address(tmp_path: Path, bad: str) -> None:
    hosts = edited("hosts", lambda h: h["web1"].update(hostname=bad))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("web1", "hostname")}
    assert "not an IPv4 address" in problems[0].message


def test_duplicate_address(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web3"].update(hostname="10.5.1.11"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("web1", "hostname"), ("web3", "hostname")}
    assert all("10.5.1.11" in p.message for p in problems)


def test_duplicate_name(tmp_path: Path) -> None:
    extra = "web2:\n  hostname: 10.5.1.14\n  groups: [web]\n"
    text = (INVENTORY / "hosts.yaml").read_text() + extra
    problems = run(tmp_path, hosts=text)
    assert fields(problems) == {("web2", "name")}
    assert "defined twice" in problems[0].message


def test_duplicate_key_inside_a_host(tmp_path: Path) -> None:
    text = (INVENTORY / "hosts.yaml").read_text().replace(
        "    vrrp_priority: 100\n", "    vrrp_priority: 100\n    vrrp_priority: 120\n"
    )
    problems = run(tmp_path, hosts=text)
    assert fields(problems) == {("rp2", "data.vrrp_priority")}


def test_invalid_yaml(tmp_path: Path) -> None:
    problems = run(tmp_path, groups="web: [unclosed\n")
    assert len(problems) == 1
    assert problems[0].file.endswith("groups.yaml")
    assert "not valid YAML" in problems[0].message


def test_vip_colliding_with_a_host_address(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web1"].update(hostname="10.5.1.110"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("web1", "hostname")}
    assert "VIP" in problems[0].message


def test_vip_outside_the_nodes_subnet(tmp_path: Path) -> None:
    groups = edited("groups", lambda g: g["rp"]["data"].update(vip="10.5.2.110"))
    problems = run(tmp_path, groups=groups)
    hosts = {p.host for p in problems}
    assert hosts == {"web1", "web2", "web3", "rp1", "rp2", "db1", "db2"}
    assert all("outside the VIP's subnet 10.5.2.0/24" in p.message for p in problems)


def test_node_outside_the_vip_subnet(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["db2"].update(hostname="10.5.9.212"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("db2", "hostname")}


@pytest.mark.parametrize("router_id", [0, 256, "fifty"])
def test_vrrp_router_id_out_of_range(tmp_path: Path, router_id: object) -> None:
    groups = edited("groups", lambda g: g["rp"]["data"].update(vrrp_router_id=router_id))
    problems = run(tmp_path, groups=groups)
    assert fields(problems) == {(None, "vrrp_router_id")}
    assert problems[0].group == "rp"
    assert problems[0].file.endswith("groups.yaml")


@pytest.mark.parametrize("priority", [0, 255, 1000])
def test_vrrp_priority_out_of_range(tmp_path: Path, priority: int) -> None:
    hosts = edited("hosts", lambda h: h["rp2"]["data"].update(vrrp_priority=priority))
    problems = run(tmp_path, hosts=hosts)
    assert ("rp2", "vrrp_priority") in fields(problems)
    assert str(problems[0]).startswith(
        f"{problems[0].file}: host rp2: field vrrp_priority: {priority} is outside 1-254"
    )


def test_two_proxies_with_the_same_priority(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["rp2"]["data"].update(vrrp_priority=150))
    problems = run(tmp_path, hosts=hosts)
    assert ("rp1", "vrrp_priority") in fields(problems)
    assert ("rp2", "vrrp_priority") in fields(problems)
    assert any("also the priority of rp1" in p.message for p in problems)


def test_master_without_the_highest_priority(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["rp2"]["data"].update(vrrp_priority=200))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("rp1", "vrrp_priority")}


def test_no_master(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["rp1"]["data"].update(vrrp_state="BACKUP"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("rp1", "vrrp_state"), ("rp2", "vrrp_state")}
    assert all("no proxy is MASTER" in p.message for p in problems)


def test_several_masters(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["rp2"]["data"].update(vrrp_state="MASTER"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("rp1", "vrrp_state"), ("rp2", "vrrp_state")}
    assert all("several MASTERs" in p.message for p in problems)


def test_invalid_vrrp_state(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["rp2"]["data"].update(vrrp_state="SLAVE"))
    problems = run(tmp_path, hosts=hosts)
    assert ("rp2", "vrrp_state") in fields(problems)


def test_unknown_vrrp_profile(tmp_path: Path) -> None:
    groups = edited("groups", lambda g: g["rp"]["data"].update(vrrp_profile="turbo"))
    problems = run(tmp_path, groups=groups)
    assert fields(problems) == {(None, "vrrp_profile")}
    assert "unknown profile 'turbo'" in problems[0].message


def test_vrrp_profile_chosen_per_host_must_be_the_same(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["rp2"]["data"].update(vrrp_profile="fast"))
    problems = run(tmp_path, hosts=hosts)
    assert ("rp2", "vrrp_profile") in fields(problems)
    assert "differs between the proxies" in problems[0].message


@pytest.mark.parametrize(
    ("profile", "wanted"),
    [({"version": 2, "advert_int": 0.5}, "VRRPv2 needs a whole advert_int"),
     ({"version": 3, "advert_int": 0.001}, "VRRPv3 advert_int"),
     ({"version": 4, "advert_int": 1}, "version must be 2 or 3")],
)
def test_invalid_vrrp_profile_timers(tmp_path: Path, profile: Data, wanted: str) -> None:
    def change(g: Data) -> None:
        g["rp"]["data"]["vrrp_profiles"]["classic"] = profile

    problems = run(tmp_path, groups=edited("groups", change))
    assert fields(problems) == {(None, "vrrp_profiles")}
    assert wanted in problems[0].message


def test_db_without_primary(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["db1"]["data"].update(db_role="replica"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("db1", "db_role"), ("db2", "db_role")}
    assert "exactly one primary (found: none)" in problems[0].message


def test_db_with_two_primaries(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["db2"]["data"].update(db_role="primary"))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("db1", "db_role"), ("db2", "db_role")}
    assert "found: db1, db2" in problems[0].message


def test_invalid_db_role(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["db2"]["data"].update(db_role="slave"))
    problems = run(tmp_path, hosts=hosts)
    assert ("db2", "db_role") in fields(problems)
    assert "'slave' is not one of primary, replica" in problems[0].message


def test_duplicate_db_server_id(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["db2"]["data"].update(db_server_id=1))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("db1", "db_server_id"), ("db2", "db_server_id")}


def test_unknown_group(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web1"].update(groups=["web", "webz"]))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("web1", "groups")}
    assert "unknown group 'webz'" in problems[0].message


def test_host_in_no_tier(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web1"].update(groups=[]))
    problems = run(tmp_path, hosts=hosts)
    assert fields(problems) == {("web1", "groups")}
    assert "in no tier" in problems[0].message


def test_host_in_two_tiers(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web1"].update(groups=["web", "db"]))
    problems = run(tmp_path, hosts=hosts)
    assert ("web1", "groups") in fields(problems)
    assert "several tiers (db, web)" in problems[0].message


@pytest.mark.parametrize("affinity", ["sticky", "", None])
def test_invalid_lb_affinity(tmp_path: Path, affinity: object) -> None:
    groups = edited("groups", lambda g: g["rp"]["data"].update(lb_affinity=affinity))
    problems = run(tmp_path, groups=groups)
    assert fields(problems) == {(None, "lb_affinity")}
    assert problems[0].group == "rp"


def test_empty_tier(tmp_path: Path) -> None:
    def change(h: Data) -> None:
        for name in ("db1", "db2"):
            del h[name]

    problems = run(tmp_path, hosts=edited("hosts", change))
    assert fields(problems) == {(None, "hosts")}
    assert problems[0].group == "db"
    assert "empty tier" in problems[0].message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def change(h: Data) -> None:
        h["web1"]["hostname"] = "nonsense"
        h["web2"]["groups"] = ["nope"]
        h["rp2"]["data"]["vrrp_priority"] = 150
        h["db2"]["data"]["db_server_id"] = 1

    problems = run(tmp_path, hosts=edited("hosts", change))
    found = fields(problems)
    assert {("web1", "hostname"), ("web2", "groups"), ("rp2", "vrrp_priority"),
            ("db2", "db_server_id")} <= found


def test_vrrp_preempt_must_be_a_boolean(tmp_path: Path) -> None:
    groups = edited("groups", lambda g: g["rp"]["data"].update(vrrp_preempt="yes please"))
    problems = run(tmp_path, groups=groups)
    assert fields(problems) == {(None, "vrrp_preempt")}


def test_session_cookie_must_be_shared_by_the_web_servers(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web3"].update(data={"session_cookie": "other"}))
    problems = run(tmp_path, hosts=hosts)
    assert ("web3", "session_cookie") in fields(problems)
    assert "differs between the web servers" in problems[0].message


def test_session_store_is_db_or_files(tmp_path: Path) -> None:
    groups = edited("groups", lambda g: g["web"]["data"].update(session_store="redis"))
    problems = run(tmp_path, groups=groups)
    assert fields(problems) == {(None, "session_store")}
    assert "'redis' is not one of db, files" in problems[0].message
    assert problems[0].file.endswith("groups.yaml")


def test_session_store_must_be_shared_by_the_web_servers(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web2"].update(data={"session_store": "files"}))
    problems = run(tmp_path, hosts=hosts)
    assert ("web2", "session_store") in fields(problems)
    assert "differs between the web servers" in problems[0].message
