"""Check the raw inventory YAML files before Nornir is built.

Every problem is collected and returned at once, each naming the file, the host (or group) and
the field, with what to fix. Loading checks each entry, key and value where it is written
(``inventory_load``); this module checks the groups' graph and the hosts, ``inventory_tiers``
what each tier needs. Nothing here raises on bad input.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from pathlib import Path

from tasks.core.inventory import TIERS, natural_key
from tasks.core.inventory_load import MISSING, InventoryFiles, InventoryProblem
from tasks.core.inventory_tiers import Addresses, check_app, check_db, check_rp, check_web
from tasks.core.inventory_values import (
    DB_ROLES,
    LB_AFFINITIES,
    VRRP_STATES,
    ipv4,
)

__all__ = ["DB_ROLES", "LB_AFFINITIES", "VRRP_STATES", "InventoryProblem", "check_inventory"]

# Nornir walks a host's groups and their parents again for every value it looks up, without
# remembering shared parents: more than this many steps is refused (the repository's: 1).
MAX_GROUP_WALK = 64
MAX_CYCLES_REPORTED = 20


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Cycles of a group -> parents graph (iterative depth-first search), a few at most."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    for root in graph:
        if root in state:
            continue
        path, branches = [root], [iter(graph[root])]
        state[root] = 1
        while branches and len(cycles) < MAX_CYCLES_REPORTED:
            parent = next(branches[-1], None)
            if parent is None:
                state[path.pop()] = 2
                branches.pop()
            elif state.get(parent) == 1:
                cycles.append(path[path.index(parent):])
            elif parent in graph and parent not in state:
                state[parent] = 1
                path.append(parent)
                branches.append(iter(graph[parent]))
    return cycles


def walk_sizes(graph: dict[str, list[str]]) -> dict[str, int]:
    """Groups Nornir visits from each group (itself and, again and again, every parent) in an
    acyclic graph, counted without visiting them."""
    sizes: dict[str, int] = {}
    for root in graph:
        stack = [root]
        while stack:
            group = stack[-1]
            pending = [p for p in graph[group] if p in graph and p not in sizes]
            if group in sizes or not pending:
                sizes.setdefault(group, 1 + sum(sizes[p] for p in graph[group] if p in graph))
                stack.pop()
            else:
                stack.extend(pending)
    return sizes


def _check_groups(c: InventoryFiles) -> None:
    for group, entry in c.groups.items():
        for parent in entry["groups"]:
            if parent not in c.groups:
                c.add("groups", None, "groups", f"unknown parent group {parent!r}", group=group)
    for tier in TIERS:
        if tier not in c.groups:
            c.add("groups", None, "name", f"tier group {tier!r} is missing", group=tier)
    _check_nesting(c)


def _check_nesting(c: InventoryFiles) -> None:
    """No group is its own member (Nornir would recurse forever); nesting stays small."""
    graph = {name: entry["groups"] for name, entry in c.groups.items()}
    cycles = find_cycles(graph)
    for cycle in cycles:
        loop = " -> ".join([*cycle, cycle[0]])
        for group in cycle:
            c.add("groups", None, "groups", f"the group is its own member ({loop})",
                  group=group)
    if cycles:
        return
    sizes = walk_sizes(graph)
    for host in c.hosts:
        walk = sum(sizes.get(g, 0) for g in c.host_groups(host))
        if walk > MAX_GROUP_WALK:
            c.add("hosts", host, "groups",
                  f"its groups and their parents make Nornir walk {walk} groups for every "
                  f"value (at most {MAX_GROUP_WALK}): nest groups less")


def _host_tier(c: InventoryFiles, host: str) -> str | None:
    """The one tier group the host is in (directly or through parents), else report."""
    groups = c.host_groups(host)
    for group in groups:
        if group not in c.groups:
            c.add("hosts", host, "groups", f"unknown group {group!r} (not in groups file)")
    member = sorted({g for g in c.group_chain(groups) if g in TIERS})
    if not member:
        c.add("hosts", host, "groups", f"in no tier: put it in exactly one of {', '.join(TIERS)}")
        return None
    if len(member) > 1:
        c.add("hosts", host, "groups", f"in several tiers ({', '.join(member)}): keep exactly one")
        return None
    tier = c.require(host, "tier")
    if tier is not None and tier != member[0]:
        c.add_for(host, "tier", f"{tier!r}, but the host is in the {member[0]} group")
    return member[0]


def _lab_problem(address: ipaddress.IPv4Address, bridge: ipaddress.IPv4Interface | None,
                 ) -> str | None:
    """Why a node address or the VIP cannot be used in the lab network, or None."""
    if bridge is None:
        return None
    if address == bridge.ip:
        return f"{address} is the controller's own bridge address (user_defined.lab)"
    if address in (bridge.network.network_address, bridge.network.broadcast_address):
        return f"{address} is the network or broadcast address of the lab network {bridge.network}"
    return None


def _host_address(c: InventoryFiles, host: str,
                  bridge: ipaddress.IPv4Interface | None) -> ipaddress.IPv4Address | None:
    raw = c.hosts[host].get("hostname", MISSING)
    if raw is MISSING:
        c.add("hosts", host, "hostname", "missing: the node's IPv4 address")
        return None
    address = ipv4(raw)  # None when invalid: reported while loading
    problem = _lab_problem(address, bridge) if address is not None else None
    if problem is not None:
        c.add("hosts", host, "hostname", problem)
        return None
    return address


def _check_hosts(c: InventoryFiles, bridge: ipaddress.IPv4Interface | None,
                 ) -> tuple[dict[str, list[str]], Addresses]:
    """Addresses and tier membership; return the hosts of each tier and the addresses."""
    tiers: dict[str, list[str]] = {tier: [] for tier in TIERS}
    addresses: Addresses = {}
    by_address: dict[ipaddress.IPv4Address, list[str]] = defaultdict(list)
    for host in c.hosts:
        address = _host_address(c, host, bridge)
        if address is not None:
            addresses[host] = address
            by_address[address].append(host)
        tier = _host_tier(c, host)
        if tier is not None:
            tiers[tier].append(host)
    for address, names in by_address.items():
        for host in names if len(names) > 1 else ():
            others = ", ".join(n for n in names if n != host)
            c.add("hosts", host, "hostname", f"address {address} is also used by {others}")
    for tier, members in tiers.items():
        if tier in c.groups and not members:
            c.add("groups", None, "hosts", "empty tier: no host belongs to it", group=tier)
        members.sort(key=natural_key)
    return tiers, addresses


def _bridge(bridge_address: str | None) -> ipaddress.IPv4Interface | None:
    """The lab bridge's interface address (checked with config.yaml; None when unusable)."""
    if bridge_address is None:
        return None
    try:
        return ipaddress.IPv4Interface(bridge_address)
    except ValueError:
        return None


def check_inventory(hosts_file: Path, groups_file: Path, defaults_file: Path,
                    bridge_address: str | None = None) -> list[InventoryProblem]:
    """Check the three SimpleInventory files; return every problem found (empty: all good).

    ``bridge_address`` (lab mode: config.yaml's user_defined.lab.bridge_address, e.g.
    10.5.1.1/24): no node and not the VIP may be that address, nor its network's network
    or broadcast address.
    """
    c = InventoryFiles(Path(hosts_file), Path(groups_file), Path(defaults_file))
    if not c.ok:
        return c.problems
    bridge = _bridge(bridge_address)
    _check_groups(c)
    tiers, addresses = _check_hosts(c, bridge)
    check_app(c, list(c.hosts))
    check_web(c, tiers["web"])
    check_rp(c, tiers["rp"], addresses, lambda a: _lab_problem(a, bridge))
    check_db(c, tiers["db"])
    return c.problems
