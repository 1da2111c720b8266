"""Turn the inventory into the lab's node list: names, addresses, interface names."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

import yaml

from tasks.core.settings import Settings


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


def load_nodes(settings: Settings) -> list[Node]:
    """One Node per inventory host, in inventory order."""
    hosts = yaml.safe_load(settings.hosts_file.read_text()) or {}
    defaults = yaml.safe_load(settings.defaults_file.read_text()) or {}
    default_domain = (defaults.get("data") or {}).get("domain", "lab")
    prefix = ipaddress.ip_interface(settings.lab_bridge_address).network.prefixlen
    nodes = []
    for name, host in hosts.items():
        domain = ((host or {}).get("data") or {}).get("domain", default_domain)
        nodes.append(Node(name, f"{name}.{domain}", str(host["hostname"]), prefix))
    return nodes
