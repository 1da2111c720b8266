"""Turn the inventory into the lab's node list: names, addresses, interface names."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.inventory_values import ipv4
from tasks.core.settings import EXIT_BAD_INVENTORY, ProjectError, Settings
from tasks.core.yaml_safe import load_yaml


@dataclass(frozen=True)
class Node:
    """One lab node: a network, mount, UTS and PID namespace running sshd."""

    name: str
    fqdn: str
    address: str
    prefix: int

    @property
    def netns(self) -> str:
        return f"tp5-{self.name}"

    @property
    def veth(self) -> str:
        """Root-namespace side of the node's cable (interface names are 15 chars max)."""
        name = f"tp5v-{self.name}"
        if len(name) <= 15:
            return name
        return "tp5v-" + hashlib.sha1(self.name.encode()).hexdigest()[:10]

    @property
    def veth_peer(self) -> str:
        """Temporary name of the node side before it is moved and renamed to eth0."""
        return "tp5p-" + hashlib.sha1(self.name.encode()).hexdigest()[:10]

    @property
    def mac(self) -> str:
        """The node's eth0 hardware address, fixed by its IP address (see lab_mac)."""
        return lab_mac(self.address)


def lab_mac(address: str) -> str:
    """A locally administered MAC made from an IPv4 address (02:00 + its four bytes).

    A node removed and created again keeps the same MAC, so the neighbour entries that the
    controller and the other nodes still hold for its address stay right (with a random MAC
    they stay REACHABLE on the old one for up to ~45 s and nothing answers).
    """
    return "02:00:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def _mapping(path: Path) -> dict[Any, Any]:
    """A YAML file's top-level mapping, read as Nornir reads it, or ProjectError (exit 2)."""
    loaded = load_yaml(path)
    if loaded.error is not None:
        raise ProjectError(f"{path}: {loaded.error}", EXIT_BAD_INVENTORY)
    if not isinstance(loaded.data, dict):
        raise ProjectError(f"{path}: must be a mapping", EXIT_BAD_INVENTORY)
    return loaded.data


def _node(path: Path, name: Any, host: Any, domain: Any, prefix: int) -> Node:
    address = ipv4(host.get("hostname")) if isinstance(host, dict) else None
    if not isinstance(name, str) or address is None:
        raise ProjectError(f"{path}: host {name!r}: field hostname: missing or not an IPv4 "
                           "address (python runbooks/lab.py status lists every problem)",
                           EXIT_BAD_INVENTORY)
    data = host.get("data")
    domain = data.get("domain", domain) if isinstance(data, dict) else domain
    return Node(name, f"{name}.{domain}", str(address), prefix)


def load_nodes(settings: Settings) -> list[Node]:
    """One Node per inventory host, in inventory order (ProjectError for unusable files)."""
    hosts = _mapping(settings.hosts_file)
    defaults = _mapping(settings.defaults_file)
    data = defaults.get("data")
    default_domain = data.get("domain", "lab") if isinstance(data, dict) else "lab"
    prefix = ipaddress.ip_interface(settings.lab_bridge_address).network.prefixlen
    return [_node(settings.hosts_file, name, host, default_domain, prefix)
            for name, host in hosts.items()]
