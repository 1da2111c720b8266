"""Check the raw inventory YAML files before Nornir is built.

Every problem is collected and returned at once, each naming the file, the host (or group) and
the field, with what to fix. Values are resolved the way Nornir's SimpleInventory does: host
data, then the host's groups in order (with their parent groups), then defaults.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.core.inventory import TIERS, natural_key

VRRP_STATES: tuple[str, ...] = ("MASTER", "BACKUP")
DB_ROLES: tuple[str, ...] = ("primary", "replica")
LB_AFFINITIES: tuple[str, ...] = ("none", "ip_hash", "hash_cookie")

_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_APP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_NGINX_TIME = re.compile(r"^\d+(ms|s|m|h|d)?$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_MISSING = object()


@dataclass(frozen=True)
class InventoryProblem:
    """One problem found in the inventory; ``group`` is set when the value comes from a group."""

    file: str
    host: str | None
    field: str
    message: str
    group: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.host is not None:
            where.append(f"host {self.host}")
        if self.group is not None:
            where.append(f"group {self.group}")
        where.append(f"field {self.field}")
        return ": ".join([*where, self.message])


@dataclass(frozen=True)
class _Duplicate:
    path: tuple[str, ...]
    key: str
    first_line: int
    line: int


def _find_duplicates(node: yaml.Node, path: tuple[str, ...] = ()) -> list[_Duplicate]:
    """Walk a composed YAML node tree and list keys repeated within one mapping."""
    found: list[_Duplicate] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                found.append(_Duplicate(path, key, seen[key], line))
            else:
                seen[key] = line
            found.extend(_find_duplicates(value_node, (*path, key)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_find_duplicates(item, (*path, str(index))))
    return found


def _load(path: Path) -> tuple[Any, list[_Duplicate], str | None]:
    """Load one YAML file; return (data, duplicate keys, error message or None)."""
    try:
        text = path.read_text()
    except OSError as exc:
        return None, [], f"cannot read the file: {exc.strerror or exc}"
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, [], None
        duplicates = _find_duplicates(node)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        return None, [], f"not valid YAML: {exc}"
    finally:
        loader.dispose()
    return data, duplicates, None


def _display(path: Path) -> str:
    """Show a path relative to the working directory when it lies under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _Checker:
    """Holds the loaded files and the problems found so far."""

    def __init__(self, hosts_file: Path, groups_file: Path, defaults_file: Path) -> None:
        self.names = {
            "hosts": _display(hosts_file),
            "groups": _display(groups_file),
            "defaults": _display(defaults_file),
        }
        self.problems: list[InventoryProblem] = []
        self._seen: set[InventoryProblem] = set()
        self.hosts: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.defaults: dict[str, Any] = {}
        self.ok = True
        for kind, path in (("hosts", hosts_file), ("groups", groups_file),
                           ("defaults", defaults_file)):
            self._load_file(kind, path)

    # -- reporting ---------------------------------------------------------------------------

    def add(self, kind: str, host: str | None, field: str, message: str,
            group: str | None = None) -> None:
        problem = InventoryProblem(self.names[kind], host, field, message, group)
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append(problem)

    def add_for(self, host: str, key: str, message: str) -> None:
        """Report a problem on a host's resolved value, in the file where it is set."""
        source = self.source(host, key)
        if source is None or source == "host":
            self.add("hosts", host, key, message)
        elif source == "defaults":
            self.add("defaults", None, key, message)
        else:
            self.add("groups", None, key, message, group=source)

    # -- loading -----------------------------------------------------------------------------

    def _load_file(self, kind: str, path: Path) -> None:
        data, duplicates, error = _load(path)
        if error is not None:
            self.add(kind, None, "(file)", error)
            self.ok = False
            return
        for dup in duplicates:
            where = f"line {dup.line} repeats line {dup.first_line}; YAML keeps only the last one"
            if kind == "hosts" and not dup.path:
                self.add(kind, dup.key, "name", f"host defined twice ({where})")
            elif kind == "groups" and not dup.path:
                self.add(kind, None, "name", f"group defined twice ({where})", group=dup.key)
            elif kind in ("hosts", "groups"):
                field = ".".join([*dup.path[1:], dup.key])
                owner = dup.path[0]
                if kind == "hosts":
                    self.add(kind, owner, field, f"duplicate key ({where})")
                else:
                    self.add(kind, None, field, f"duplicate key ({where})", group=owner)
            else:
                self.add(kind, None, ".".join([*dup.path, dup.key]), f"duplicate key ({where})")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.add(kind, None, "(file)", f"must be a mapping, not {type(data).__name__}")
            self.ok = False
            return
        if kind == "defaults":
            self.defaults = data
            if not isinstance(data.get("data", {}), dict):
                self.add(kind, None, "data", "must be a mapping")
                self.defaults = {**data, "data": {}}
            return
        target = self.hosts if kind == "hosts" else self.groups
        for name, entry in data.items():
            name = str(name)
            if entry is None:
                entry = {}
            if not isinstance(entry, dict):
                if kind == "hosts":
                    self.add(kind, name, "(entry)", "must be a mapping of host settings")
                else:
                    self.add(kind, None, "(entry)", "must be a mapping", group=name)
                continue
            if not isinstance(entry.get("data", {}) or {}, dict):
                if kind == "hosts":
                    self.add(kind, name, "data", "must be a mapping")
                else:
                    self.add(kind, None, "data", "must be a mapping", group=name)
                entry = {**entry, "data": {}}
            if not isinstance(entry.get("groups", []) or [], list):
                if kind == "hosts":
                    self.add(kind, name, "groups", "must be a list of group names")
                else:
                    self.add(kind, None, "groups", "must be a list of group names", group=name)
                entry = {**entry, "groups": []}
            target[name] = entry

    # -- resolution --------------------------------------------------------------------------

    def group_chain(self, groups: list[str], _seen: frozenset[str] = frozenset()) -> list[str]:
        """Groups in Nornir's lookup order (each group, then its parents), known ones only."""
        chain: list[str] = []
        for group in groups:
            if group in _seen or group not in self.groups:
                continue
            chain.append(group)
            parents = [str(g) for g in self.groups[group].get("groups") or []]
            chain.extend(self.group_chain(parents, _seen | {group}))
        return chain

    def host_groups(self, host: str) -> list[str]:
        return [str(g) for g in self.hosts[host].get("groups") or []]

    def source(self, host: str, key: str) -> str | None:
        """Where a host's data key is set: "host", a group name, "defaults" or None."""
        if key in (self.hosts[host].get("data") or {}):
            return "host"
        for group in self.group_chain(self.host_groups(host)):
            if key in (self.groups[group].get("data") or {}):
                return group
        if key in (self.defaults.get("data") or {}):
            return "defaults"
        return None

    def value(self, host: str, key: str) -> Any:
        """A host's data value, resolved through groups and defaults, or ``_MISSING``."""
        source = self.source(host, key)
        if source is None:
            return _MISSING
        if source == "host":
            return self.hosts[host]["data"][key]
        if source == "defaults":
            return self.defaults["data"][key]
        return self.groups[source]["data"][key]

    def tier_of(self, host: str) -> str | None:
        tiers = [g for g in self.group_chain(self.host_groups(host)) if g in TIERS]
        return tiers[0] if len(set(tiers)) == 1 else None

    def require(self, host: str, key: str) -> Any:
        value = self.value(host, key)
        if value is _MISSING:
            self.add("hosts", host, key, "missing (set it on the host, its group or defaults)")
        return value

    def require_int(self, host: str, key: str, low: int, high: int) -> int | None:
        value = self.require(host, key)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add_for(host, key, f"must be an integer from {low} to {high}, got {value!r}")
            return None
        if not low <= value <= high:
            self.add_for(host, key, f"{value} is outside {low}-{high}")
            return None
        return value

    def require_choice(self, host: str, key: str, choices: tuple[str, ...]) -> str | None:
        value = self.require(host, key)
        if value is _MISSING:
            return None
        if value not in choices:
            self.add_for(host, key, f"{value!r} is not one of {', '.join(choices)}")
            return None
        return str(value)


def _address(value: Any) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def _check_defaults(c: _Checker) -> None:
    data = c.defaults.get("data") or {}
    domain = data.get("domain", _MISSING)
    if domain is _MISSING:
        c.add("defaults", None, "domain", "missing: the DNS domain of the nodes, e.g. tp5.b2")
    elif not isinstance(domain, str) or not _DOMAIN.match(domain):
        c.add("defaults", None, "domain", f"{domain!r} is not a valid DNS domain")
    app = data.get("app_name", _MISSING)
    if app is _MISSING:
        c.add("defaults", None, "app_name", "missing: the web application's name")
    elif not isinstance(app, str) or not _APP_NAME.match(app):
        c.add("defaults", None, "app_name",
              f"{app!r} must be lowercase letters, digits and underscores")


def _check_groups(c: _Checker) -> None:
    for group, entry in c.groups.items():
        for parent in entry.get("groups") or []:
            if str(parent) not in c.groups:
                c.add("groups", None, "groups", f"unknown parent group {parent!r}", group=group)
    for tier in TIERS:
        if tier not in c.groups:
            c.add("groups", None, "name", f"tier group {tier!r} is missing", group=tier)


def _check_hosts(c: _Checker) -> dict[str, list[str]]:
    """Names, addresses and tier membership; return the hosts of each tier."""
    tiers: dict[str, list[str]] = {tier: [] for tier in TIERS}
    by_address: dict[ipaddress.IPv4Address, list[str]] = defaultdict(list)
    for host, entry in c.hosts.items():
        if not _HOST_NAME.match(host):
            c.add("hosts", host, "name",
                  "must be a DNS label (a-z, 0-9, '-'): it becomes <name>.<domain>")
        raw = entry.get("hostname", _MISSING)
        if raw is _MISSING or raw is None or raw == "":
            c.add("hosts", host, "hostname", "missing: the node's IPv4 address")
        else:
            address = _address(raw)
            if address is None:
                c.add("hosts", host, "hostname", f"{raw!r} is not an IPv4 address")
            else:
                by_address[address].append(host)
        groups = c.host_groups(host)
        for group in groups:
            if group not in c.groups:
                c.add("hosts", host, "groups", f"unknown group {group!r} (not in groups file)")
        chain = c.group_chain(groups)
        member = sorted({g for g in chain if g in TIERS})
        if not member:
            c.add("hosts", host, "groups",
                  f"in no tier: put it in exactly one of {', '.join(TIERS)}")
        elif len(member) > 1:
            c.add("hosts", host, "groups",
                  f"in several tiers ({', '.join(member)}): keep exactly one")
        else:
            tiers[member[0]].append(host)
    for address, names in by_address.items():
        if len(names) > 1:
            for host in names:
                others = ", ".join(n for n in names if n != host)
                c.add("hosts", host, "hostname", f"address {address} is also used by {others}")
    for tier, members in tiers.items():
        if tier in c.groups and not members:
            c.add("groups", None, "hosts", "empty tier: no host belongs to it", group=tier)
        members.sort(key=natural_key)
    return tiers


def _check_web(c: _Checker, hosts: list[str]) -> None:
    cookies: dict[str, list[str]] = defaultdict(list)
    for host in hosts:
        c.require_int(host, "http_port", 1, 65535)
        cookie = c.require(host, "session_cookie")
        if cookie is _MISSING:
            continue
        if not isinstance(cookie, str) or not _COOKIE_NAME.match(cookie):
            c.add_for(host, "session_cookie", f"{cookie!r} is not a cookie name")
        else:
            cookies[cookie].append(host)
    if len(cookies) > 1:
        detail = "; ".join(f"{', '.join(h)}: {v}" for v, h in cookies.items())
        for members in cookies.values():
            for host in members:
                c.add_for(host, "session_cookie",
                          f"differs between the web servers ({detail}): affinity needs one")


def _check_vrrp_profile(c: _Checker, host: str) -> None:
    name = c.require(host, "vrrp_profile")
    profiles = c.require(host, "vrrp_profiles")
    if name is _MISSING or profiles is _MISSING:
        return
    if not isinstance(profiles, dict) or not profiles:
        c.add_for(host, "vrrp_profiles", "must be a mapping of profile name to settings")
        return
    if name not in profiles:
        c.add_for(host, "vrrp_profile",
                  f"unknown profile {name!r}; known: {', '.join(map(str, profiles))}")
        return
    profile = profiles[name]
    if not isinstance(profile, dict):
        c.add_for(host, "vrrp_profiles", f"profile {name!r} must be a mapping")
        return
    version = profile.get("version")
    advert = profile.get("advert_int")
    if version not in (2, 3):
        c.add_for(host, "vrrp_profiles", f"profile {name!r}: version must be 2 or 3")
        return
    if isinstance(advert, bool) or not isinstance(advert, int | float):
        c.add_for(host, "vrrp_profiles", f"profile {name!r}: advert_int must be a number")
    elif version == 2 and (advert != int(advert) or not 1 <= advert <= 255):
        c.add_for(host, "vrrp_profiles",
                  f"profile {name!r}: VRRPv2 needs a whole advert_int from 1 to 255 s, "
                  f"got {advert} (use version 3 for sub-second adverts)")
    elif version == 3 and (not 0.01 <= advert <= 40.95 or round(advert * 100) != advert * 100):
        c.add_for(host, "vrrp_profiles",
                  f"profile {name!r}: VRRPv3 advert_int must be 0.01-40.95 s in "
                  f"centiseconds, got {advert}")


def _check_rp(c: _Checker, hosts: list[str]) -> None:
    addresses = {h: _address(e.get("hostname")) for h, e in c.hosts.items()}
    priorities: dict[int, list[str]] = defaultdict(list)
    masters: list[str] = []
    shared: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for host in hosts:
        _check_vrrp_profile(c, host)
        c.require_int(host, "vrrp_router_id", 1, 255)
        priority = c.require_int(host, "vrrp_priority", 1, 254)
        if priority is not None:
            priorities[priority].append(host)
        state = c.require_choice(host, "vrrp_state", VRRP_STATES)
        if state == "MASTER":
            masters.append(host)
        c.require_choice(host, "lb_affinity", LB_AFFINITIES)
        c.require_int(host, "lb_max_fails", 0, 1000)
        timeout = c.require(host, "lb_fail_timeout")
        if timeout is not _MISSING and not _NGINX_TIME.match(str(timeout)):
            c.add_for(host, "lb_fail_timeout", f"{timeout!r} is not an nginx time (e.g. 10s)")
        interface = c.require(host, "vrrp_interface")
        if interface is not _MISSING and not re.match(r"^[\w.-]{1,15}$", str(interface)):
            c.add_for(host, "vrrp_interface", f"{interface!r} is not an interface name")
        c.require_int(host, "vrrp_preempt_delay", 0, 1000)
        preempt = c.require(host, "vrrp_preempt")
        if preempt is not _MISSING and not isinstance(preempt, bool):
            c.add_for(host, "vrrp_preempt", f"must be true or false, got {preempt!r}")
        for key in ("vip", "vip_prefix", "vrrp_router_id", "vrrp_profile"):
            value = c.value(host, key)
            if value is not _MISSING:
                shared[key][repr(value)].append(host)
        _check_vip(c, host, addresses)
    for key, values in shared.items():
        if len(values) > 1:
            detail = "; ".join(f"{', '.join(h)}: {v}" for v, h in values.items())
            for members in values.values():
                for host in members:
                    c.add_for(host, key, f"differs between the proxies ({detail}); they share "
                                         "one VRRP instance")
    for priority, members in priorities.items():
        if len(members) > 1:
            for host in members:
                c.add("hosts", host, "vrrp_priority",
                      f"{priority} is also the priority of "
                      f"{', '.join(m for m in members if m != host)}: give each proxy its own")
    if hosts and not masters:
        for host in hosts:
            c.add("hosts", host, "vrrp_state", "no proxy is MASTER: make exactly one MASTER")
    elif len(masters) > 1:
        for host in masters:
            c.add("hosts", host, "vrrp_state",
                  f"several MASTERs ({', '.join(masters)}): make exactly one MASTER")
    elif masters:
        master = masters[0]
        mine = c.value(master, "vrrp_priority")
        higher = [h for p, hs in priorities.items() for h in hs
                  if h != master and isinstance(mine, int) and p >= mine]
        if higher:
            c.add("hosts", master, "vrrp_priority",
                  f"MASTER priority {mine} is not above {', '.join(sorted(higher))}: "
                  "the MASTER must have the highest priority")


def _check_vip(c: _Checker, host: str,
               addresses: dict[str, ipaddress.IPv4Address | None]) -> None:
    raw = c.require(host, "vip")
    prefix = c.require_int(host, "vip_prefix", 1, 30)
    if raw is _MISSING:
        return
    vip = _address(raw)
    if vip is None:
        c.add_for(host, "vip", f"{raw!r} is not an IPv4 address")
        return
    for other, address in addresses.items():
        if address == vip:
            c.add("hosts", other, "hostname",
                  f"{address} collides with the VIP of the proxies (vip {vip})")
    if prefix is None:
        return
    network = ipaddress.IPv4Network(f"{vip}/{prefix}", strict=False)
    if vip in (network.network_address, network.broadcast_address):
        c.add_for(host, "vip", f"{vip} is the network or broadcast address of {network}")
    for other, address in addresses.items():
        if address is not None and address not in network:
            c.add("hosts", other, "hostname",
                  f"{address} is outside the VIP's subnet {network}: every node must share it")


def _check_db(c: _Checker, hosts: list[str]) -> None:
    primaries: list[str] = []
    ids: dict[int, list[str]] = defaultdict(list)
    for host in hosts:
        c.require_int(host, "db_port", 1, 65535)
        if c.require_choice(host, "db_role", DB_ROLES) == "primary":
            primaries.append(host)
        server_id = c.require_int(host, "db_server_id", 1, 2**32 - 1)
        if server_id is not None:
            ids[server_id].append(host)
    if hosts and len(primaries) != 1:
        found = ", ".join(primaries) if primaries else "none"
        for host in primaries or hosts:
            c.add("hosts", host, "db_role",
                  f"the db tier needs exactly one primary (found: {found})")
    for server_id, members in ids.items():
        if len(members) > 1:
            for host in members:
                c.add("hosts", host, "db_server_id",
                      f"{server_id} is also used by "
                      f"{', '.join(m for m in members if m != host)}: ids must be unique")


def check_inventory(hosts_file: Path, groups_file: Path,
                    defaults_file: Path) -> list[InventoryProblem]:
    """Check the three SimpleInventory files; return every problem found (empty: all good)."""
    c = _Checker(Path(hosts_file), Path(groups_file), Path(defaults_file))
    if not c.ok:
        return c.problems
    _check_defaults(c)
    _check_groups(c)
    tiers = _check_hosts(c)
    _check_web(c, tiers["web"])
    _check_rp(c, tiers["rp"])
    _check_db(c, tiers["db"])
    return c.problems
