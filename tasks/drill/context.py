"""What a drill works with, read once from the settings and the inventory.

`build_context` checks the request (group, target, capture interface) against the inventory
before anything connects, builds Nornir once, and fills a `DrillContext`. `choose_roles`
decides, before each experiment, which router is faulted and which should take over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from nornir.core import Nornir

from tasks.core.guard import ensure_lab_targets
from tasks.core.inventory import expected_master, fqdn, natural_key, tier_hosts, vip
from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import ProjectError, Settings
from tasks.drill.proxies import read_vip_holders

# The groups a drill can fault, and what they are (the web drill: tasks/drill/web_context).
DRILLABLE_GROUPS: dict[str, str] = {"rp": "the VRRP routers",
                                    "web": "the web servers behind NGINX",
                                    "db": "the database primary (tasks/drill/db_*)"}
VRRP_GROUPS: tuple[str, ...] = ("rp",)  # whose hosts share a VIP by VRRP (this module)


class LabControl(Protocol):
    """What the lab faults need of the local lab (tp5lab.control.Lab, given by the runbook:
    tasks/ never imports the lab)."""

    def crash(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def cut_link(self, name: str) -> None: ...
    def restore_link(self, name: str) -> None: ...


@dataclass(frozen=True)
class DrillOptions:
    """How to observe: capture or not, where, and the probes' cadence."""

    capture: bool = False
    iface: str | None = None  # where the sniffer listens (default: the lab bridge)
    probe_interval: float = 0.02
    probe_timeout: float = 0.3
    settle_timeout: float = 15.0  # how long the steady state may take to hold before a fault


@dataclass(frozen=True)
class Roles:
    """Who is faulted and who should take the VIP over, decided before an experiment."""

    target: str
    backup: str
    backup_priority: int


@dataclass(frozen=True)
class DrillContext:
    """Everything the experiments need; nothing in it changes during a drill."""

    nr: Nornir  # the routers of the drilled group
    lab: LabControl | None  # None on real machines
    vip: str
    interface: str  # the routers' VRRP interface
    bridge: str | None  # the lab bridge (route check of the probes), None on real machines
    iface: str | None  # where the sniffer listens
    web_fqdns: tuple[str, ...]
    vrrp_version: int
    advert_int: float
    preempt: bool
    preempt_delay: float
    master: str | None  # who must hold the VIP in the steady state (None: any single holder)
    priorities: Mapping[str, int]  # router -> VRRP priority
    names: Mapping[str, str]  # address -> host name, for reports
    options: DrillOptions
    progress: Callable[[str], None]


def check_drillable(group: str) -> None:
    """ProjectError (exit 2) unless the drill knows how to fault the group."""
    if group not in DRILLABLE_GROUPS:
        known = ", ".join(f"{g} ({what})" for g, what in DRILLABLE_GROUPS.items())
        raise ProjectError(f"--group {group}: {group!r} cannot be drilled (no drill for it "
                           f"yet); the groups that can be drilled are: {known}", 2)


def build_context(settings: Settings, group: str, options: DrillOptions, *,
                  target: str | None = None, lab: LabControl | None = None,
                  progress: Callable[[str], None] = lambda _m: None) -> DrillContext:
    """Check the request, build Nornir once and read the drill's facts from the inventory.

    Every refusal (exit 2: bad group, target or interface; exit 3: lab not reachable)
    comes before any connection."""
    check_drillable(group)
    if group not in VRRP_GROUPS:
        raise ProjectError(f"--group {group}: not VRRP routers; see tasks.drill.web_context", 2)
    iface = options.iface or (settings.lab_bridge if settings.is_lab else None)
    if options.capture and iface is None:
        raise ProjectError("--capture on real machines needs --iface (the interface of this "
                           "machine that sees the routers' VRRP traffic)", 2)
    nr = build_nornir(settings, check_lab=False)
    routers = select_hosts(nr, [group])
    _check_routers(routers, group, target)
    address = vip(nr.inventory)
    if address is None:
        raise ProjectError(f"{settings.groups_file}: no VIP: the inventory has no proxy tier", 2)
    if settings.is_lab:
        ensure_reachable(nr, settings)
        ensure_lab_targets(settings, [address])  # the probes' only destination
    first = next(iter(routers.inventory.hosts.values()))
    profile = first["vrrp_profiles"][first["vrrp_profile"]]
    return DrillContext(
        nr=routers, lab=lab, vip=address, interface=str(first["vrrp_interface"]),
        bridge=settings.lab_bridge if settings.is_lab else None, iface=iface,
        web_fqdns=tuple(sorted(fqdn(h) for h in tier_hosts(nr.inventory, "web"))),
        vrrp_version=int(profile["version"]), advert_int=float(profile["advert_int"]),
        preempt=bool(first.get("vrrp_preempt", True)),
        preempt_delay=float(first.get("vrrp_preempt_delay", 0)),
        master=expected_master(nr.inventory),
        priorities={h.name: int(h["vrrp_priority"]) for h in routers.inventory.hosts.values()},
        names={h.hostname: h.name for h in nr.inventory.hosts.values()},
        options=options, progress=progress,
    )


def _check_routers(routers: Nornir, group: str, target: str | None) -> None:
    hosts = list(routers.inventory.hosts)
    if len(hosts) < 2:
        raise ProjectError(f"group {group} has {len(hosts)} host(s); a drill needs two", 2)
    if target is not None and target not in hosts:
        raise ProjectError(f"--target {target}: not a host of group {group} "
                           f"(its hosts: {', '.join(hosts)})", 2)


def by_priority(ctx: DrillContext) -> list[str]:
    """The routers, highest VRRP priority first."""
    return sorted(ctx.priorities, key=lambda n: (-ctx.priorities[n], natural_key(n)))


def choose_roles(ctx: DrillContext, target: str | None = None) -> Roles:
    """The router to fault and its expected successor (the highest priority of the others).

    The target is `target` if given, else the router that must hold the VIP; without
    preemption the VIP stays where the last failover put it, so the current holder."""
    chosen = target or ctx.master or _single_holder(ctx) or by_priority(ctx)[0]
    backup = next(name for name in by_priority(ctx) if name != chosen)
    return Roles(chosen, backup, ctx.priorities[backup])


def _single_holder(ctx: DrillContext) -> str | None:
    holders, _ = read_vip_holders(ctx.nr, ctx.vip, ctx.interface)
    return holders[0] if len(holders) == 1 else None
