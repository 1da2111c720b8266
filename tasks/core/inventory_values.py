"""What each inventory value may be: its type and, for strings, a strict ASCII pattern.

Every string that reaches a template, a path or a shell is matched in full (``re.fullmatch``
with explicit ASCII classes: no ``$`` that lets a trailing newline through, no ``\\w`` that
accepts any Unicode letter). A check returns the problems of one value, empty when it is good.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from tasks.core.db_names import db_name_collision
from tasks.core.inventory import TIERS

Check = Callable[[Any], list[str]]

VRRP_STATES: tuple[str, ...] = ("MASTER", "BACKUP")
DB_ROLES: tuple[str, ...] = ("primary", "replica")
LB_AFFINITIES: tuple[str, ...] = ("none", "ip_hash", "hash_cookie")
SESSION_STORES: tuple[str, ...] = ("db", "files")

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME = re.compile(_LABEL)
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
DOMAIN = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
APP_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
COOKIE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
PROFILE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
INTERFACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
NGINX_TIME = re.compile(r"[0-9]{1,9}(?:ms|s|m|h|d)?")
IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PLATFORM = re.compile(r"[a-z0-9_]{1,32}")
SAFE_TEXT = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no space
# How a key or name is shown in a message as it is; anything else is shown with repr().
PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def shown(value: object) -> str:
    """A name for a message: as is when plain, else repr() (newlines and all made visible)."""
    return value if isinstance(value, str) and PLAIN.fullmatch(value) else repr(value)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> list[str]:
        if not is_int(value):
            return [f"must be an integer from {low} to {high}, got {value!r}"]
        if not low <= value <= high:
            return [f"{value} is outside {low}-{high}"]
        return []
    return check


def choice(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> list[str]:
        if not isinstance(value, str) or value not in choices:
            return [f"{value!r} is not one of {', '.join(choices)}"]
        return []
    return check


def text(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: Any) -> list[str]:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return [f"{value!r} is not {what}"]
        return []
    return check


def boolean(value: Any) -> list[str]:
    return [] if isinstance(value, bool) else [f"must be true or false, got {value!r}"]


def ipv4(value: Any) -> ipaddress.IPv4Address | None:
    """The address of an exact dotted-quad string (no spaces, no leading zeros), else None."""
    if not isinstance(value, str) or not IPV4.fullmatch(value):
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        return None


def host_address(value: Any) -> list[str]:
    """A unicast IPv4 address a node can have (the subnet checks come later)."""
    address = ipv4(value)
    if address is None:
        return [f"{value!r} is not an IPv4 address (dotted quad, nothing around it)"]
    if (address.is_unspecified or address.is_loopback or address.is_multicast
            or address.is_reserved or address.is_link_local):
        return [f"{address} is not a usable host address (loopback, multicast, reserved, "
                "link-local or unspecified)"]
    return []


def app_name(value: Any) -> list[str]:
    if not isinstance(value, str) or not APP_NAME.fullmatch(value):
        return [f"{value!r} must be 1-32 lowercase letters, digits and underscores, "
                "starting with a letter"]
    collision = db_name_collision(value)
    if collision is not None:
        return [f"{value!r} {collision}: it names the app's database and account; "
                "choose another name"]
    return []


def domain(value: Any) -> list[str]:
    if not isinstance(value, str) or len(value) > 253 or not DOMAIN.fullmatch(value):
        return [f"{value!r} is not a valid DNS domain"]
    return []


def nginx_time(value: Any) -> list[str]:
    if is_int(value) and value >= 0:
        return []
    if isinstance(value, str) and NGINX_TIME.fullmatch(value):
        return []
    return [f"{value!r} is not an nginx time (e.g. 10s)"]


def _advert_problem(version: object, advert: object) -> str | None:
    if version not in (2, 3) or isinstance(version, bool):
        return "version must be 2 or 3"
    if isinstance(advert, bool) or not isinstance(advert, int | float):
        return "advert_int must be a number"
    if version == 2 and (advert != int(advert) or not 1 <= advert <= 255):
        return (f"VRRPv2 needs a whole advert_int from 1 to 255 s, got {advert} "
                "(use version 3 for sub-second adverts)")
    if version == 3 and (not 0.01 <= advert <= 40.95 or round(advert * 100) != advert * 100):
        return f"VRRPv3 advert_int must be 0.01-40.95 s in centiseconds, got {advert}"
    return None


def vrrp_profile(name: Any, profile: Any) -> list[str]:
    """One entry of vrrp_profiles: a safe name and exactly {version, advert_int}."""
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name):
        return [f"profile name {name!r} is not a name (a letter, then letters, digits, '_' "
                "or '-', 32 at most): it is written into keepalived.conf"]
    if not isinstance(profile, dict):
        return [f"profile {name!r} must be a mapping"]
    unknown = [shown(k) for k in profile if k not in ("version", "advert_int")]
    if unknown:
        return [f"profile {name!r}: unknown key(s) {', '.join(unknown)} "
                "(known: version, advert_int)"]
    problem = _advert_problem(profile.get("version"), profile.get("advert_int"))
    return [f"profile {name!r}: {problem}"] if problem else []


def vrrp_profiles(value: Any) -> list[str]:
    if not isinstance(value, dict) or not value:
        return ["must be a mapping of profile name to settings"]
    return [p for name, profile in value.items() for p in vrrp_profile(name, profile)]


# Every data key the framework reads, with its check (wherever it is set).
DATA_FIELDS: dict[str, Check] = {
    "tier": choice(TIERS),
    "domain": domain,
    "app_name": app_name,
    "http_port": integer(1, 65535),
    "session_cookie": text(COOKIE_NAME, "a cookie name (a letter, then letters, digits, '_')"),
    "session_store": choice(SESSION_STORES),
    "vip": host_address,
    "vip_prefix": integer(1, 30),
    "vrrp_interface": text(INTERFACE, "an interface name"),
    "vrrp_router_id": integer(1, 255),
    "vrrp_state": choice(VRRP_STATES),
    "vrrp_priority": integer(1, 254),
    "vrrp_preempt": boolean,
    "vrrp_preempt_delay": integer(0, 1000),
    "vrrp_profile": text(PROFILE_NAME, "a profile name"),
    "vrrp_profiles": vrrp_profiles,
    "lb_affinity": choice(LB_AFFINITIES),
    "lb_max_fails": integer(0, 1000),
    "lb_fail_timeout": nginx_time,
    "db_role": choice(DB_ROLES),
    "db_server_id": integer(1, 2**32 - 1),
    "db_port": integer(1, 65535),
}


def _connection_options(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["must be a mapping of connection name to options"]
    problems = []
    for name, options in value.items():
        if not isinstance(name, str) or not PLATFORM.fullmatch(name):
            problems.append(f"{name!r} is not a connection plugin name")
        elif not isinstance(options, dict):
            problems.append(f"{name}: must be a mapping")
        else:
            problems.extend(f"{name}.{p}" for p in _option_problems(options))
    return problems


def _option_problems(options: dict[Any, Any]) -> list[str]:
    problems = []
    for key, value in options.items():
        check = _CONNECTION_FIELDS.get(key) if isinstance(key, str) else None
        if check is None:
            problems.append(f"{shown(key)}: unknown key (known: {', '.join(_CONNECTION_FIELDS)})")
        else:
            problems.extend(f"{key}: {p}" for p in check(value))
    return problems


def _extras(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["must be a mapping"]
    return [f"{k!r} is not an option name" for k in value
            if not isinstance(k, str) or not PLATFORM.fullmatch(k)]


_CONNECTION_FIELDS: dict[str, Check] = {
    "hostname": host_address,
    "port": integer(1, 65535),
    "username": text(USER_NAME, "a user name"),
    "password": text(SAFE_TEXT, "a password of printable ASCII without spaces"),
    "platform": text(PLATFORM, "a platform name"),
    "extras": _extras,
}

# The settings of a host, group or defaults entry besides data and groups (as Nornir reads).
ENTRY_FIELDS: dict[str, Check] = {
    "hostname": host_address,
    "port": integer(1, 65535),
    "username": text(USER_NAME, "a user name"),
    "password": text(SAFE_TEXT, "a password of printable ASCII without spaces"),
    "platform": text(PLATFORM, "a platform name"),
    "connection_options": _connection_options,
}
