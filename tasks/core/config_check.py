"""What config.yaml may hold: the Nornir sections this project supports, with their types.

Only the SimpleInventory plugin and the threaded runner are supported; any other section or
key is refused by name (a typo would otherwise be ignored, or make Nornir fail later with a
traceback). ``check_config`` returns one line per problem, "field <path>: <what is wrong>".
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from tasks.core.inventory_values import (
    INTERFACE,
    IPV4,
    Check,
    boolean,
    choice,
    host_address,
    integer,
    shown,
    text,
)

PATH = re.compile(r"[^\x00-\x1f\x7f]{1,4096}")
LOG_FORMAT = re.compile(r"[\x20-\x7e]{1,512}")
BRIDGE_ADDRESS = re.compile(rf"{IPV4.pattern}/[0-9]{{1,2}}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _supported(name: str) -> Check:
    def check(value: Any) -> list[str]:
        return [] if value == name else [f"{value!r} is not supported: use {name}"]
    return check


def _bridge_address(value: Any) -> list[str]:
    """The controller's address on the lab bridge with its prefix, e.g. 10.5.1.1/24."""
    if not isinstance(value, str) or not BRIDGE_ADDRESS.fullmatch(value):
        return [f"{value!r} is not an IPv4 address with a prefix (e.g. 10.5.1.1/24)"]
    address, prefix = value.split("/")
    problems = host_address(address)
    if problems:
        return problems
    if not 8 <= int(prefix) <= 30:
        return [f"prefix /{prefix} is outside 8-30"]
    interface = ipaddress.IPv4Interface(value)
    if interface.ip in (interface.network.network_address, interface.network.broadcast_address):
        return [f"{interface.ip} is the network or broadcast address of {interface.network}"]
    return []


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return ["must be a list of logger names"]
    return [p for item in value for p in text(re.compile(r"[A-Za-z0-9_.]{1,128}"),
                                              "a logger name")(item)]


Schema = dict[str, "Schema | Check"]

SCHEMA: Schema = {
    "inventory": {
        "plugin": _supported("SimpleInventory"),
        "options": {key: text(PATH, "a file path")
                    for key in ("host_file", "group_file", "defaults_file")},
    },
    "runner": {"plugin": _supported("threaded"), "options": {"num_workers": integer(1, 1000)}},
    "logging": {
        "enabled": boolean, "level": choice(LOG_LEVELS), "file": text(PATH, "a file path"),
        "format": text(LOG_FORMAT, "a log format"), "to_console": boolean, "loggers": _names,
    },
    "core": {"raise_on_error": boolean},
    "ssh": {"config_file": text(PATH, "a file path")},
    "user_defined": {
        "target": choice(("lab", "real")),
        "lab": {"bridge": text(INTERFACE, "an interface name"), "bridge_address": _bridge_address},
        # Real machines only: let the inventory name an ssh_config_file or proxy (a bastion).
        "allow_ssh_config_file": boolean,
    },
}


def _check_key(path: str, key: Any, value: Any, schema: Schema) -> list[str]:
    where = f"{path}.{shown(key)}" if path else shown(key)
    rule = schema.get(key) if isinstance(key, str) else None
    if rule is None:
        return [f"field {where}: unknown key (known: {', '.join(schema)})"]
    if isinstance(rule, dict):
        return check_section(value, rule, where)
    return [f"field {where}: {problem}" for problem in rule(value)]


def check_section(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Problems of one mapping and what it holds, against its schema."""
    if not isinstance(value, dict):
        where = f"field {path}" if path else "(file)"
        return [f"{where}: must be a mapping, not {type(value).__name__}"]
    return [p for key, item in value.items() for p in _check_key(path, key, item, schema)]


def check_config(raw: Any) -> list[str]:
    """Every problem of a loaded config.yaml (empty: all good)."""
    return check_section(raw, SCHEMA)
