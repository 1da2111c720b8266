"""The inventory check against hostile or careless input: strings that would inject config,
names MariaDB already uses, unusable addresses, YAML built to exhaust the machine, group
cycles, wrong types. Each case: a clear problem naming file, host or group and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inventory_files import INVENTORY, Data, edited, real, run

from tasks.core import db_names
from tasks.core.inventory_check import InventoryProblem, check_inventory
from tasks.db import sql
from tp5lab.inventory_factory import write_inventory

BRIDGE = "10.5.1.1/24"


def group_data(group: str, **values: Any) -> Data:
    return edited("groups", lambda g: g[group]["data"].update(values))


def host_data(host: str, **values: Any) -> Data:
    return edited("hosts", lambda h: h[host].setdefault("data", {}).update(values))


def only(problems: list[InventoryProblem], host: str | None, field: str) -> InventoryProblem:
    """The problem on (host, field), asserting it is there."""
    found = [p for p in problems if (p.host, p.field) == (host, field)]
    assert found, [str(p) for p in problems]
    return found[0]


# --- B. strings that reach a template, a path or a shell ----------------------------------

INJECTIONS = [
    "x\nvrrp_script evil {\n script /tmp/x\n}", "classic\n", "cl\u00e4ssic", "clas sic",
    "a;reboot", "$(reboot)", "`id`", "a'b", "a\"b", "a{b}", "a\x00b", "", "a\rb", "x" * 300,
]


@pytest.mark.parametrize("name", INJECTIONS, ids=repr)
def test_a_vrrp_profile_name_must_be_plain(tmp_path: Path, name: str) -> None:
    def change(g: Data) -> None:
        g["rp"]["data"]["vrrp_profiles"][name] = {"version": 3, "advert_int": 0.1}

    problems = run(tmp_path, groups=edited("groups", change))
    problem = only(problems, None, "vrrp_profiles")
    assert problem.group == "rp" and "keepalived.conf" in problem.message
    assert repr(name) in problem.message  # shown escaped, never raw


@pytest.mark.parametrize("profile", [
    {"version": 3, "advert_int": 0.1, "script": "/tmp/x"},
    {"version": "3", "advert_int": 0.1},
    {"version": True, "advert_int": 1},
    {"version": 2, "advert_int": "1"},
    {"version": 2, "advert_int": True},
    {"version": 2},
    ["version", 2],
], ids=repr)
def test_every_vrrp_profile_is_checked_not_only_the_selected_one(
    tmp_path: Path, profile: Any
) -> None:
    problems = run(tmp_path, groups=edited(
        "groups", lambda g: g["rp"]["data"]["vrrp_profiles"].update(other=profile)))
    assert "'other'" in only(problems, None, "vrrp_profiles").message


TEXT_FIELDS = {
    # field: (file, owner) where the repository sets it
    "app_name": ("defaults", None), "domain": ("defaults", None),
    "session_cookie": ("groups", "web"), "vrrp_interface": ("groups", "rp"),
    "lb_fail_timeout": ("groups", "rp"), "vrrp_profile": ("groups", "rp"),
    "lb_affinity": ("groups", "rp"), "tier": ("groups", "web"), "vip": ("groups", "rp"),
}
BAD_TEXT = ["{good}\n", " {good}", "{good} ", "{good};reboot", "{good}$(id)", "\u00e9{good}",
            "{good}\u0660", "{good}\t", ["{good}"], {"v": "{good}"}, None]


def _variant(template: Any, good: str) -> Any:
    if isinstance(template, str):
        return template.format(good=good)
    if isinstance(template, list):
        return [good]
    return template if template is None else {"v": good}


def _run_with(tmp_path: Path, field: str, value: Any) -> list[InventoryProblem]:
    kind, owner = TEXT_FIELDS[field]
    if kind == "defaults":
        defaults = edited("defaults", lambda d: d["data"].update({field: value}))
        return run(tmp_path, defaults=defaults)
    return run(tmp_path, groups=group_data(str(owner), **{field: value}))


@pytest.mark.parametrize("template", BAD_TEXT, ids=repr)
@pytest.mark.parametrize("field", list(TEXT_FIELDS))
def test_template_strings_are_matched_in_full_and_ascii_only(
    tmp_path: Path, field: str, template: Any
) -> None:
    kind, owner = TEXT_FIELDS[field]
    good = (real(kind)["data"] if owner is None else real(kind)[owner]["data"])[field]
    problems = _run_with(tmp_path, field, _variant(template, str(good)))
    problem = only(problems, None, field)
    assert problem.group == owner and problem.file.endswith(f"{kind}.yaml")


@pytest.mark.parametrize("name", ["web1\n", "w\u00e9b1", "web 1", "WEB1", "web1;x", "-web1",
                                  "web_1", "web1.", "a" * 64])
def test_a_host_name_must_be_a_dns_label(tmp_path: Path, name: str) -> None:
    def change(h: Data) -> None:
        h[name] = h.pop("web1")

    problem = only(run(tmp_path, hosts=edited("hosts", change)), name, "name")
    assert "DNS label" in problem.message and problem.file.endswith("hosts.yaml")


@pytest.mark.parametrize("group", ["web\n", "w\u00e9b", "web web", "web;x", "", 5, None])
def test_a_group_reference_must_be_a_group_name(tmp_path: Path, group: Any) -> None:
    problems = run(tmp_path, hosts=edited("hosts", lambda h: h["web1"].update(
        groups=["web", group])))
    assert "is not a group name" in only(problems, "web1", "groups").message


@pytest.mark.parametrize(("key", "value"), [
    ("http_port", True), ("http_port", "80"), ("http_port", 80.0), ("http_port", [80]),
    ("vrrp_priority", "150"), ("vrrp_priority", 150.5), ("vrrp_priority", False),
    ("vrrp_preempt", "yes"), ("vrrp_preempt", 1), ("vrrp_preempt", None),
    ("db_server_id", True), ("db_port", "3306"), ("vip_prefix", "24"),
    ("vrrp_profiles", ["classic"]), ("vrrp_profiles", {}), ("lb_fail_timeout", 1.5),
    ("lb_fail_timeout", -1), ("lb_max_fails", None),
])
def test_values_of_the_wrong_type_are_refused(tmp_path: Path, key: str, value: Any) -> None:
    problems = run(tmp_path, hosts=host_data("rp1", **{key: value}))
    assert only(problems, "rp1", key).file.endswith("hosts.yaml")


@pytest.mark.parametrize(("yaml_value", "key"), [
    ("no", "vrrp_preempt"), ("off", "vrrp_preempt"), ("1:30", "lb_max_fails"),
    ("yes", "vrrp_preempt"), ("~", "vrrp_router_id"),
])
def test_values_are_read_as_nornir_reads_them_yaml_1_2(
    tmp_path: Path, yaml_value: str, key: str
) -> None:
    # PyYAML (YAML 1.1) reads `no` as false; Nornir (ruamel, YAML 1.2) keeps "no", which
    # keepalived's template would take as true.
    text = (INVENTORY / "hosts.yaml").read_text().replace(
        "    vrrp_priority: 150\n", f"    vrrp_priority: 150\n    {key}: {yaml_value}\n")
    only(run(tmp_path, hosts=text), "rp1", key)


@pytest.mark.parametrize(("where", "key"), [
    ("host", "hostnmae"), ("host", "vars"), ("data", "vrrp_prority"), ("data", "tier\n"),
    ("data", 5), ("group", "hots"), ("defaults", "groups"),
])
def test_unknown_keys_are_named(tmp_path: Path, where: str, key: Any) -> None:
    if where == "host":
        problems = run(tmp_path, hosts=edited("hosts", lambda h: h["web1"].update({key: 1})))
        only(problems, "web1", key)
    elif where == "data":
        problems = run(tmp_path, hosts=host_data("web1", **{str(key): 1}) if isinstance(
            key, str) else edited("hosts", lambda h: h["web1"].update(data={key: 1})))
        assert any(p.host == "web1" and ("unknown" in p.message) for p in problems)
    elif where == "group":
        problems = run(tmp_path, groups=edited("groups", lambda g: g["rp"].update({key: 1})))
        assert only(problems, None, key).group == "rp"
    else:
        problems = run(tmp_path, defaults=edited("defaults", lambda d: d.update({key: ["web"]})))
        assert only(problems, None, key).file.endswith("defaults.yaml")


@pytest.mark.parametrize("text", ["- web1\n- web2\n", "just text\n", "42\n",
                                  "web1: [1, 2]\n", "web1: text\n", "? [a, b]\n: 1\n",
                                  "1: {hostname: 10.5.1.11}\n", "null: {}\n"])
def test_hosts_file_of_the_wrong_shape(tmp_path: Path, text: str) -> None:
    problems = run(tmp_path, hosts=text)
    assert problems and problems[0].file.endswith("hosts.yaml")


def test_problem_text_shows_a_hostile_name_escaped() -> None:
    problem = InventoryProblem("hosts.yaml", "web1\nvrrp_script x", "name", "bad")
    assert "\n" not in str(problem) and "'web1\\nvrrp_script x'" in str(problem)


# --- C. names the database already uses ----------------------------------------------------

DB_NAMES = ["mysql", "information_schema", "performance_schema", "sys", "test", "test_app",
            "root", "public", "tp5admin", "repl", "select", "order", "key", "table", "database",
            "schema", "grant", "drop", "user_not_reserved_but_too_long_for_a_mariadb_acct"]


@pytest.mark.parametrize("name", DB_NAMES)
def test_app_names_that_collide_with_mariadb_are_refused(tmp_path: Path, name: str) -> None:
    problems = run(tmp_path, defaults=edited("defaults", lambda d: d["data"].update(
        app_name=name)))
    problem = only(problems, None, "app_name")
    assert problem.file.endswith("defaults.yaml") and repr(name) in problem.message


@pytest.mark.parametrize("name", ["MySQL", "Information_Schema", "SYS", "Test_Shop", "ROOT",
                                  "Public", "TP5Admin", "REPL", "Select", "oRdEr",
                                  "mariadb.sys", "Debian-Sys-Maint", "InSeRt"])
def test_db_name_collisions_ignore_case(name: str) -> None:
    assert db_names.db_name_collision(name) is not None


@pytest.mark.parametrize("name", ["app_nulle", "shop", "tester", "testing", "sysadmin_app",
                                  "reply", "roots"])
def test_ordinary_app_names_are_accepted(tmp_path: Path, name: str) -> None:
    assert db_names.db_name_collision(name) is None
    assert run(tmp_path, defaults=edited("defaults", lambda d: d["data"].update(
        app_name=name))) == []


def test_the_framework_accounts_are_the_ones_the_db_code_uses() -> None:
    assert {sql.ADMIN_USER, sql.REPL_USER} == set(db_names.FRAMEWORK_ACCOUNTS)


def test_one_app_name_for_every_host(tmp_path: Path) -> None:
    problems = run(tmp_path, hosts=host_data("db2", app_name="other_app"))
    assert "differs between the hosts" in only(problems, "db2", "app_name").message


# --- D. addresses, YAML bombs, group cycles ------------------------------------------------

@pytest.mark.parametrize(("address", "bridge", "wanted"), [
    ("10.5.1.0", None, "network or broadcast address of the VIP's subnet"),
    ("10.5.1.255", None, "network or broadcast address of the VIP's subnet"),
    ("10.5.1.1", BRIDGE, "controller's own bridge address"),
    ("10.5.1.0", BRIDGE, "network or broadcast address of the lab network"),
    ("10.5.1.255", BRIDGE, "network or broadcast address of the lab network"),
    ("10.5.1.11 ", None, "not an IPv4 address"), (" 10.5.1.11", None, "not an IPv4 address"),
    ("10.5.1.11\n", None, "not an IPv4 address"), ("10.5.1.11\t", None, "not an IPv4 address"),
    ("10.5.1.011", None, "not an IPv4 address"), ("127.0.0.1", None, "not a usable host"),
    ("224.0.0.18", None, "not a usable host"), ("0.0.0.0", None, "not a usable host"),
    (10, None, "not an IPv4 address"), (["10.5.1.11"], None, "not an IPv4 address"),
])
def test_unusable_node_addresses_are_inventory_errors(
    tmp_path: Path, address: Any, bridge: str | None, wanted: str
) -> None:
    problems = run(tmp_path, hosts=edited("hosts", lambda h: h["web1"].update(
        hostname=address)), bridge=bridge)
    problem = only(problems, "web1", "hostname")
    assert wanted in problem.message and problem.file.endswith("hosts.yaml")


def test_the_lab_network_ends_are_refused_even_inside_a_wider_vip_subnet(tmp_path: Path) -> None:
    hosts = edited("hosts", lambda h: h["web1"].update(hostname="10.5.1.255"))
    assert run(tmp_path, hosts=hosts, groups=group_data("rp", vip_prefix=16)) == []
    problems = run(tmp_path, hosts=hosts, groups=group_data("rp", vip_prefix=16), bridge=BRIDGE)
    assert "lab network" in only(problems, "web1", "hostname").message


@pytest.mark.parametrize(("vip", "bridge", "wanted"), [
    ("10.5.1.1", BRIDGE, "bridge address"), ("10.5.1.0", None, "network or broadcast"),
    ("10.5.1.255", None, "network or broadcast"), ("10.5.1.110\n", None, "not an IPv4"),
    ("10.5.1.110/24", None, "not an IPv4"), ("255.255.255.255", None, "not a usable host"),
])
def test_unusable_vips_are_inventory_errors(tmp_path: Path, vip: str, bridge: str | None,
                                            wanted: str) -> None:
    problems = run(tmp_path, groups=group_data("rp", vip=vip), bridge=bridge)
    problem = only(problems, None, "vip")
    assert problem.group == "rp" and wanted in problem.message


def test_the_real_inventory_passes_in_lab_mode_and_so_do_grown_ones(tmp_path: Path) -> None:
    assert check_inventory(INVENTORY / "hosts.yaml", INVENTORY / "groups.yaml",
                           INVENTORY / "defaults.yaml", BRIDGE) == []
    write_inventory(tmp_path, 99)
    folder = tmp_path / "inventory"
    assert check_inventory(folder / "hosts.yaml", folder / "groups.yaml",
                           folder / "defaults.yaml", BRIDGE) == []


def _laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


BOMBS = {
    "billion laughs": _laughs(),
    "billion laughs in data": "web1:\n  hostname: 10.5.1.11\n  data:\n"
                              + "".join(f"    {line}\n" for line in _laughs().splitlines()),
    "one anchor": "web1: &w {hostname: 10.5.1.11, groups: [web]}\n",
    "merge key": "x: &base {groups: [web]}\nweb1:\n  <<: *base\n  hostname: 10.5.1.11\n",
    "deep nesting": "web1: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep mappings": "web1: " + "{a: " * 200 + "1" + "}" * 200 + "\n",
    "oversized": "# " + "x" * (1 << 20) + "\n",
}


@pytest.mark.parametrize("kind", ["hosts", "groups", "defaults"])
@pytest.mark.parametrize("bomb", list(BOMBS))
def test_yaml_built_to_exhaust_the_machine_is_refused(tmp_path: Path, kind: str,
                                                      bomb: str) -> None:
    problems = run(tmp_path, **{kind: BOMBS[bomb]})
    assert len(problems) == 1 and problems[0].file.endswith(f"{kind}.yaml")
    assert problems[0].field == "(file)"
    assert any(word in problems[0].message for word in ("refused", "larger than"))


def test_not_utf8_is_a_file_problem(tmp_path: Path) -> None:
    paths = [tmp_path / f"{n}.yaml" for n in ("hosts", "groups", "defaults")]
    paths[0].write_bytes(b"web1: {hostname: \xff}\n")
    for path, name in zip(paths[1:], ("groups", "defaults"), strict=True):
        path.write_text((INVENTORY / f"{name}.yaml").read_text())
    problems = check_inventory(*paths)
    assert "not UTF-8" in only(problems, None, "(file)").message


@pytest.mark.parametrize("parents", [
    {"web": ["web"]},
    {"web": ["front"], "front": ["web"]},
    {"web": ["a"], "a": ["b"], "b": ["web"]},
    {"x": ["y"], "y": ["x"]},
    {"rp": ["rp", "web"]},
])
def test_a_group_that_is_its_own_member_is_an_inventory_error(
    tmp_path: Path, parents: dict[str, list[str]]
) -> None:
    def change(g: Data) -> None:
        for group, members in parents.items():
            g.setdefault(group, {})["groups"] = members

    problems = run(tmp_path, groups=edited("groups", change))
    cyclic = [p for p in problems if "its own member" in p.message]
    assert cyclic and all(p.field == "groups" and p.file.endswith("groups.yaml")
                          for p in cyclic)
    assert {p.group for p in cyclic} >= {next(iter(parents))}


@pytest.mark.parametrize(("depth", "width"), [(100, 1), (8, 2), (4, 5), (40, 2)])
def test_group_nesting_that_nornir_would_walk_too_long_is_refused(
    tmp_path: Path, depth: int, width: int
) -> None:
    # Nornir walks every path through the parents, again for each value: width ** depth.
    def change(g: Data) -> None:
        for level in range(depth):
            parents = [f"n{level + 1}_{j}" for j in range(width)] if level + 1 < depth else []
            for i in range(width):
                g[f"n{level}_{i}"] = {"groups": list(parents)}
        g["web"]["groups"] = ["n0_0"]

    problems = run(tmp_path, groups=edited("groups", change))
    assert "nest groups less" in only(problems, "web1", "groups").message
