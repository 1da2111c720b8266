"""Refuse to send lab traffic anywhere but through the lab bridge; refuse risky SSH settings.

The lab's 10.5.1.0/24 only exists behind the bridge; without it, packets for those
addresses would leave the machine by the default route. Every piece of code that connects
to an inventory host in lab mode calls `ensure_lab_targets` first, with the addresses that
will really be dialled.

`connection_problems` lists the inventory's connection settings refused before any
connection: in lab mode anything that would dial another address or port than the host's
``hostname``:22 (netmiko extras ``host``, ``ip``, ``port``, ``ssh_config_file``, proxies,
connection-option ``hostname``/``port``); in every mode a non-SSH device type, disabled
host-key checking, a socket from the inventory, and (unless config.yaml sets
``user_defined.allow_ssh_config_file: true``) an ssh_config file or proxy.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tasks.core import state
from tasks.core.settings import ProjectError

if TYPE_CHECKING:
    from nornir.core.inventory import ConnectionOptions, Host

    from tasks.core.settings import Settings


class LabNotReady(ProjectError):
    """The lab is down, or an address would not go through the lab bridge (exit code 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"refusing to connect: {message}", 3)


def _route(address: str) -> dict:
    """The kernel's route to address (`ip -j route get`), empty when there is none."""
    proc = subprocess.run(
        ["ip", "-j", "route", "get", address], capture_output=True, text=True, check=False
    )
    routes = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    return routes[0] if routes else {}


def route_device(address: str) -> str | None:
    """The interface the kernel would use to reach address (None if no route)."""
    return _route(address).get("dev")


def route_source(address: str) -> str | None:
    """This machine's own address on the route to `address` (None if no route or source)."""
    return _route(address).get("prefsrc")


def bridge_is_up(bridge: str) -> bool:
    proc = subprocess.run(
        ["ip", "-j", "link", "show", "dev", bridge], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return False
    links = json.loads(proc.stdout or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


def check_addresses(bridge: str, addresses: Iterable[str]) -> list[str]:
    """Problems that forbid sending traffic to these addresses (empty: all go via bridge)."""
    if not bridge_is_up(bridge):
        return [f"the lab bridge {bridge} is not up (run: python runbooks/lab.py up)"]
    targets = list(addresses)
    if len(targets) > 1:  # one `ip route get` each, run together
        with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
            devices = list(pool.map(route_device, targets))
    else:
        devices = [route_device(address) for address in targets]
    problems = []
    for address, dev in zip(targets, devices, strict=True):
        if dev != bridge:
            problems.append(f"{address} would be reached via {dev or 'no route'}, not {bridge}")
    return problems


def ensure_lab_targets(settings: Settings, addresses: Iterable[str]) -> None:
    """Raise ProjectError unless the lab is up and every address is behind its bridge."""
    problems = check_addresses(settings.lab_bridge, addresses)
    if not state.KEY_FILE.exists():
        problems.append(f"no lab key at {state.KEY_FILE} (run: python runbooks/lab.py up)")
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise LabNotReady(
            "the targets are the local lab (config.yaml "
            f"user_defined.target: lab) but:\n{listed}"
        )


# --- what the inventory may change about the SSH connection ---------------------------------

# netmiko arguments that change where (or through what) the session goes.
REDIRECTING_EXTRAS = ("host", "ip", "port", "ssh_config_file")
# Never from the inventory: a live socket or a serial line is not an SSH host.
NEVER_EXTRAS = ("sock", "sock_telnet", "serial_settings")
# Real machines: a ssh_config file may hold a ProxyCommand (a local command run as this user).
SSH_CONFIG_OPT_IN = "allow_ssh_config_file"


def _redirecting_keys(extras: dict[str, Any]) -> list[str]:
    return [k for k in extras if k in REDIRECTING_EXTRAS or "proxy" in k.lower()]


def _field(key: str) -> str:
    return f"connection_options.netmiko.extras.{key}"


def lab_redirects(host: Host, options: ConnectionOptions) -> list[str]:
    """Lab mode: every setting that would make Nornir dial something else than
    ``hostname``:22 (the address the lab guard checks)."""
    extras = options.extras or {}
    found = [f"{_field(k)} = {extras[k]!r}" for k in _redirecting_keys(extras)]
    if options.hostname != host.hostname:
        found.append(f"connection_options.netmiko.hostname = {options.hostname!r}")
    if (options.port or 22) != 22:
        where = "connection_options.netmiko.port" if options.port != host.port else "port"
        found.append(f"{where} = {options.port!r}")
    return [f"host {host.name}: {f} redirects the SSH connection away from "
            f"{host.hostname}:22; refused in lab mode (the guard checks what is dialled)"
            for f in found]


def any_mode_problems(host: Host, options: ConnectionOptions, allow_ssh_config: bool) -> list[str]:
    """Settings refused on real machines as in the lab: not SSH, no host-key checking, a
    socket, an ssh_config file or proxy (unless allowed: config.yaml's opt-in, or lab mode,
    where `lab_redirects` refuses them)."""
    extras = options.extras or {}
    problems = [f"host {host.name}: {_field(k)}: not settable from the inventory"
                for k in NEVER_EXTRAS if k in extras]
    kind = str(extras.get("device_type") or options.platform or "")
    if "telnet" in kind or "serial" in kind:
        problems.append(f"host {host.name}: device type {kind!r}: only SSH is supported")
    if "ssh_strict" in extras and extras["ssh_strict"] is not True:
        problems.append(f"host {host.name}: {_field('ssh_strict')} = {extras['ssh_strict']!r}: "
                        "host keys are always checked (to trust new keys for one run, set "
                        "TP5_ACCEPT_NEW_HOST_KEYS=1)")
    proxies = [k for k in _redirecting_keys(extras)
               if k == "ssh_config_file" or "proxy" in k.lower()]
    if proxies and not allow_ssh_config:
        problems += [f"host {host.name}: {_field(k)}: an ssh_config file or proxy may run a "
                     f"local command and redirect the session; refused unless config.yaml "
                     f"sets user_defined.{SSH_CONFIG_OPT_IN}: true" for k in proxies]
    return problems


def connection_problems(settings: Settings, hosts: Iterable[Host]) -> list[str]:
    """Every inventory connection setting refused in this mode (empty: none)."""
    allow = settings.raw.get("user_defined", {}).get(SSH_CONFIG_OPT_IN) is True
    problems = []
    for host in hosts:
        options = host.get_connection_parameters("netmiko")
        problems += any_mode_problems(host, options, allow or settings.is_lab)
        if settings.is_lab:
            problems += lab_redirects(host, options)
    return list(dict.fromkeys(problems))
