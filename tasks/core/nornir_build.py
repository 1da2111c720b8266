"""Build Nornir from the project's settings: inventory checked first, lab guard before SSH.

`build_nornir` refuses a bad inventory and refused connection settings (every problem
listed, exit code 2: tasks/core/guard.py says which), wires the lab's SSH key and pinned
host keys into the netmiko connection options in lab mode, then checks that the address
every selected host will really be dialled at is behind the lab bridge (exit 3 otherwise).
On real machines, TP5_ACCEPT_NEW_HOST_KEYS=1 lets this run trust (and record) unknown host
keys; the lab's pinned keys are never extended.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.filter import F
from nornir.core.plugins.connections import ConnectionPluginRegister

from tasks.core import state
from tasks.core.connection import (
    CONNECTION,
    accept_new_host_keys,
    dial_parameters,
    dialled,
    share_netmiko_options,
)
from tasks.core.guard import connection_problems, ensure_lab_targets
from tasks.core.inventory_check import check_inventory
from tasks.core.settings import EXIT_BAD_INVENTORY, ProjectError, Settings, load_settings

# Failed hosts are reported by the runbooks; keep Nornir's tracebacks off the terminal.
logging.getLogger("nornir").addHandler(logging.NullHandler())
logging.getLogger("nornir").propagate = False


def check_inventory_or_raise(settings: Settings) -> None:
    """Raise ProjectError (exit 2) listing every inventory problem, if there is any."""
    problems = check_inventory(settings.hosts_file, settings.groups_file, settings.defaults_file,
                               settings.lab_bridge_address if settings.is_lab else None)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ProjectError(
            f"the inventory has {len(problems)} problem(s); nothing was done:\n{lines}",
            EXIT_BAD_INVENTORY,
        )


def build_nornir(
    config_file: Path | str | Settings | None = None,
    groups: list[str] | tuple[str, ...] = (),
    hosts: list[str] | tuple[str, ...] = (),
    check_lab: bool = True,
) -> Nornir:
    """Check the inventory, build Nornir, apply the lab's connection settings and filters.

    In lab mode (and with check_lab) every selected host must be reached through the lab
    bridge, or ProjectError is raised before any connection is opened. The Settings are kept
    in ``nr.config.user_defined["settings"]`` for the tasks.
    """
    settings = config_file if isinstance(config_file, Settings) else load_settings(config_file)
    check_inventory_or_raise(settings)
    inventory = dict(settings.raw.get("inventory", {}))
    inventory["options"] = {
        "host_file": str(settings.hosts_file),
        "group_file": str(settings.groups_file),
        "defaults_file": str(settings.defaults_file),
    }
    config = {k: v for k, v in settings.raw.items() if k not in ("inventory",)}
    nr = InitNornir(inventory=inventory, **config)
    check_connections_or_raise(nr, settings)
    nr = select_hosts(nr, groups, hosts)
    if settings.is_lab:
        apply_lab_connection_options(nr)
    share_netmiko_options(nr, accept_new=accept_new_host_keys() and not settings.is_lab)
    if settings.is_lab and check_lab:
        ensure_reachable(nr, settings)
    return nr


def check_connections_or_raise(nr: Nornir, settings: Settings) -> None:
    """Raise ProjectError (exit 2) listing every refused connection setting, if any; also
    when the `netmiko_exec` plugin is not installed (its entry point)."""
    if CONNECTION not in ConnectionPluginRegister.available:
        raise ProjectError(f"the Nornir connection plugin {CONNECTION} is not registered: "
                           "install the project (make setup, or pip install -e .)",
                           EXIT_BAD_INVENTORY)
    problems = connection_problems(settings, nr.inventory.hosts.values())
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ProjectError(
            f"{settings.hosts_file} (and its groups/defaults): {len(problems)} refused "
            f"connection setting(s); nothing was done:\n{lines}",
            EXIT_BAD_INVENTORY,
        )


def apply_lab_connection_options(nr: Nornir) -> None:
    """Point every host's netmiko connection at the lab key and pinned host keys (checked
    strictly by the plugin, as every host key is)."""
    for host in nr.inventory.hosts.values():
        options = host.get_connection_parameters("netmiko")
        host.connection_options["netmiko"] = options
        extras = dict(options.extras or {})
        extras.update(
            use_keys=True,
            key_file=str(state.KEY_FILE),
            allow_agent=False,
            alt_key_file=str(state.KNOWN_HOSTS),
        )
        options.extras = extras


def dialled_addresses(nr: Nornir) -> list[str]:
    """The address each host of `nr` will really be dialled at (its `netmiko_exec` options)."""
    return [dialled(dial_parameters(h.get_connection_parameters(CONNECTION)))[0]
            for h in nr.inventory.hosts.values()]


def ensure_reachable(nr: Nornir, settings: Settings) -> None:
    """In lab mode, raise ProjectError (exit 3) unless the address every host of `nr` will be
    dialled at is behind the lab bridge; on real machines, nothing to check."""
    if settings.is_lab:
        ensure_lab_targets(settings, dialled_addresses(nr))


def select_hosts(
    nr: Nornir, groups: list[str] | tuple[str, ...] = (), hosts: list[str] | tuple[str, ...] = ()
) -> Nornir:
    """`nr` filtered to the named groups and hosts (ProjectError, exit 2, for unknown names)."""
    unknown = [h for h in hosts if h not in nr.inventory.hosts]
    unknown_groups = [g for g in groups if g not in nr.inventory.groups]
    if unknown or unknown_groups:
        names = ", ".join([f"host {h}" for h in unknown] + [f"group {g}" for g in unknown_groups])
        raise ProjectError(f"{nr.config.inventory.options['host_file']}: no such {names} in "
                           "the inventory", 2)
    if groups:
        nr = nr.filter(F(groups__any=list(groups)))
    if hosts:
        nr = nr.filter(F(name__any=list(hosts)))
    return nr
