"""What each tier needs from the inventory, across its hosts: values present, shared values
equal, one MASTER with the highest priority, one database primary, unique ids.

Values were checked where they are written (``inventory_load``); here ``require`` returns a
host's valid value or None (a missing value is reported, an invalid one already was).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable

from tasks.core.inventory_load import INVALID, MISSING, InventoryFiles
from tasks.core.inventory_values import ipv4

Addresses = dict[str, ipaddress.IPv4Address]
LabProblem = Callable[[ipaddress.IPv4Address], "str | None"]

_RP_KEYS = ("vrrp_router_id", "vrrp_interface", "vrrp_preempt", "vrrp_preempt_delay",
            "lb_affinity", "lb_max_fails", "lb_fail_timeout")
_RP_SHARED = ("vip", "vip_prefix", "vrrp_router_id", "vrrp_profile")


def _report_differences(c: InventoryFiles, key: str, hosts: list[str], what: str) -> None:
    """Report ``key`` on every host when its valid value is not the same on all of them."""
    values: dict[str, list[str]] = defaultdict(list)
    for host in hosts:
        value = c.value(host, key)
        if value is not MISSING and value is not INVALID:
            values[repr(value)].append(host)
    if len(values) < 2:
        return
    detail = "; ".join(f"{', '.join(h)}: {v}" for v, h in values.items())
    for members in values.values():
        for host in members:
            c.add_for(host, key, f"differs between {what} ({detail})")


def check_app(c: InventoryFiles, hosts: list[str]) -> None:
    """Every host has a domain and the one app name (it names the database and its account)."""
    for host in hosts:
        c.require(host, "domain")
        c.require(host, "app_name")
    _report_differences(c, "app_name", hosts, "the hosts: one app, one database")


def check_web(c: InventoryFiles, hosts: list[str]) -> None:
    for host in hosts:
        c.require(host, "http_port")
        c.require(host, "session_cookie")
        c.require(host, "session_store")
    _report_differences(c, "session_cookie", hosts, "the web servers: affinity needs one")
    _report_differences(c, "session_store", hosts, "the web servers: a session must be "
                        "found by each of them")


def _check_profile_choice(c: InventoryFiles, host: str) -> None:
    name = c.require(host, "vrrp_profile")
    profiles = c.require(host, "vrrp_profiles")
    if name is not None and profiles is not None and name not in profiles:
        known = ", ".join(repr(p) for p in profiles)
        c.add_for(host, "vrrp_profile", f"unknown profile {name!r}; known: {known}")


def _check_vip(c: InventoryFiles, host: str, addresses: Addresses,
               lab_problem: LabProblem) -> None:
    vip = ipv4(c.require(host, "vip"))
    prefix = c.require(host, "vip_prefix")
    if vip is None:
        return
    problem = lab_problem(vip)
    if problem is not None:
        c.add_for(host, "vip", problem)
    for other, address in addresses.items():
        if address == vip:
            c.add("hosts", other, "hostname",
                  f"{address} collides with the VIP of the proxies (vip {vip})")
    if prefix is None:
        return
    network = ipaddress.IPv4Network(f"{vip}/{prefix}", strict=False)
    ends = (network.network_address, network.broadcast_address)
    if vip in ends:
        c.add_for(host, "vip", f"{vip} is the network or broadcast address of {network}")
    for other, address in addresses.items():
        if address in ends:
            c.add("hosts", other, "hostname",
                  f"{address} is the network or broadcast address of the VIP's subnet {network}")
        elif address not in network:
            c.add("hosts", other, "hostname",
                  f"{address} is outside the VIP's subnet {network}: every node must share it")


def _check_priorities(c: InventoryFiles, priorities: dict[int, list[str]]) -> None:
    for priority, members in priorities.items():
        for host in members if len(members) > 1 else ():
            c.add("hosts", host, "vrrp_priority",
                  f"{priority} is also the priority of "
                  f"{', '.join(m for m in members if m != host)}: give each proxy its own")


def _check_master(c: InventoryFiles, hosts: list[str], masters: list[str],
                  priorities: dict[int, list[str]]) -> None:
    if hosts and not masters:
        for host in hosts:
            c.add("hosts", host, "vrrp_state", "no proxy is MASTER: make exactly one MASTER")
        return
    if len(masters) > 1:
        for host in masters:
            c.add("hosts", host, "vrrp_state",
                  f"several MASTERs ({', '.join(masters)}): make exactly one MASTER")
        return
    master = masters[0] if masters else None
    mine = c.value(master, "vrrp_priority") if master else None
    if master is None or isinstance(mine, bool) or not isinstance(mine, int):
        return
    higher = [h for p, hs in priorities.items() for h in hs if h != master and p >= mine]
    if higher:
        c.add("hosts", master, "vrrp_priority",
              f"MASTER priority {mine} is not above {', '.join(sorted(higher))}: "
              "the MASTER must have the highest priority")


def check_rp(c: InventoryFiles, hosts: list[str], addresses: Addresses,
             lab_problem: LabProblem) -> None:
    """The proxies share one VRRP instance: same VIP, router id and profile; one MASTER."""
    priorities: dict[int, list[str]] = defaultdict(list)
    masters: list[str] = []
    for host in hosts:
        _check_profile_choice(c, host)
        for key in _RP_KEYS:
            c.require(host, key)
        priority = c.require(host, "vrrp_priority")
        if priority is not None:
            priorities[priority].append(host)
        if c.require(host, "vrrp_state") == "MASTER":
            masters.append(host)
        _check_vip(c, host, addresses, lab_problem)
    for key in _RP_SHARED:
        _report_differences(c, key, hosts, "the proxies; they share one VRRP instance")
    _check_priorities(c, priorities)
    _check_master(c, hosts, masters, priorities)


def check_db(c: InventoryFiles, hosts: list[str]) -> None:
    primaries: list[str] = []
    ids: dict[int, list[str]] = defaultdict(list)
    for host in hosts:
        c.require(host, "db_port")
        if c.require(host, "db_role") == "primary":
            primaries.append(host)
        server_id = c.require(host, "db_server_id")
        if server_id is not None:
            ids[server_id].append(host)
    if hosts and len(primaries) != 1:
        found = ", ".join(primaries) if primaries else "none"
        for host in primaries or hosts:
            c.add("hosts", host, "db_role",
                  f"the db tier needs exactly one primary (found: {found})")
    for server_id, members in ids.items():
        for host in members if len(members) > 1 else ():
            c.add("hosts", host, "db_server_id",
                  f"{server_id} is also used by "
                  f"{', '.join(m for m in members if m != host)}: ids must be unique")
