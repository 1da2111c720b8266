"""Questions about the inventory, answered in one place: tiers, names, the VIP and its MASTER.

The tier of a host is its ``tier`` data (set by its tier group: web, rp or db); ``TIERS`` lists
them in deploy order (a tier's hosts apply after every host of the tiers before it).
"""

from __future__ import annotations

import re
from typing import Any

from nornir.core.inventory import Host, Inventory

TIERS: tuple[str, ...] = ("db", "web", "rp")


def natural_key(name: str) -> list[Any]:
    """Sort key that puts web2 before web10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def tier_of(host: Host) -> str:
    """The host's tier (its ``tier`` data, set by its tier group)."""
    tier = host["tier"]
    if tier not in TIERS:
        raise ValueError(f"host {host.name}: unknown tier {tier!r}")
    return str(tier)


def tier_hosts(inventory: Inventory, tier: str) -> list[Host]:
    """The hosts of one tier, in natural name order."""
    hosts = [h for h in inventory.hosts.values() if h.get("tier") == tier]
    return sorted(hosts, key=lambda h: natural_key(h.name))


def fqdn(host: Host) -> str:
    return f"{host.name}.{host['domain']}"


def app_fqdn(host: Host) -> str:
    """The app's name, `<app_name>.<domain>` (the name clients use for the VIP)."""
    return f"{host['app_name']}.{host['domain']}"


def app_at_vip(inventory: Inventory) -> tuple[str, str, Host] | None:
    """The app's name, the VIP it resolves to, and the proxy whose data gave them (None
    without a proxy tier)."""
    proxies = tier_hosts(inventory, "rp")
    if not proxies:
        return None
    return app_fqdn(proxies[0]), str(proxies[0]["vip"]), proxies[0]


def vip(inventory: Inventory) -> str | None:
    """The proxies' virtual IP (None without a proxy tier)."""
    proxies = tier_hosts(inventory, "rp")
    return str(proxies[0]["vip"]) if proxies else None


def expected_master(inventory: Inventory) -> str | None:
    """The proxy that must hold the VIP in the steady state: the inventory's MASTER (else the
    first proxy). None when any holder will do: without preemption, after a failover the VIP
    stays where it went, and without a proxy tier nobody holds it."""
    proxies = tier_hosts(inventory, "rp")
    if not proxies or not proxies[0].get("vrrp_preempt", True):
        return None
    return next((h.name for h in proxies if h.get("vrrp_state") == "MASTER"), proxies[0].name)
