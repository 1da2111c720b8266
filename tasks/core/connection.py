"""The Nornir connection the tasks use: netmiko's SSH session, without the prompt dance.

`netmiko_exec` (registered as a Nornir connection plugin by the package's entry point) opens
the host with netmiko's ConnectHandler and the inventory's `netmiko` options (copied by
`share_netmiko_options`), built with ``auto_connect=False`` and then only
``establish_connection()``: the SSH handshake and a shell channel, without netmiko's session
preparation (finding the prompt, terminal settings). Our tasks run every command on its own
exec channel of that SSH transport (tasks/core/remote.py) and never use the interactive
shell. Measured here: 54 hosts in parallel connect in 6.1 s with the full preparation,
against 0.4 s for the SSH handshakes alone. Linux hosts only (netmiko's `linux` device type).

Host keys are always checked against one known_hosts file: the netmiko extra
``alt_key_file`` when the inventory names one, else ``~/.ssh/known_hosts``. An unknown or a
changed key raises `HostKeyRefused`, whose message names the host, the key, the file and the
command line that accepts it. Trusting new keys is a per-run opt-in (TP5_ACCEPT_NEW_HOST_KEYS=1,
real machines only) that prints a warning for every key it adds; a changed key is never
accepted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

import paramiko
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoTimeoutException
from nornir.core import Nornir
from nornir.core.configuration import Config
from nornir.core.inventory import ConnectionOptions
from nornir_netmiko.connections.netmiko import napalm_to_netmiko_map

from tasks.core.settings import ProjectError

CONNECTION = "netmiko_exec"
ACCEPT_NEW_ENV = "TP5_ACCEPT_NEW_HOST_KEYS"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
# Set by share_netmiko_options (never read from the inventory): "strict" or "accept-new".
HOST_KEY_POLICY = "tp5_host_key_policy"
_known_hosts_lock = threading.Lock()


class HostKeyRefused(ProjectError):
    """The host's SSH key is unknown or changed: nothing was sent to it."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of ``key`` (as `ssh-keygen -lf` prints it)."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def known_hosts_name(host: str, port: int) -> str:
    """The name under which known_hosts lists host:port (``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def accept_hint(host: str, port: int, key: paramiko.PKey, known_hosts: Path) -> str:
    return (f"`ssh-keyscan -p {port} -t {key.get_name()} {host} >> {known_hosts}` (first "
            f"compare the fingerprint with `ssh-keygen -lf` of the machine's host key, on its "
            f"console)")


class StrictHostKeys(paramiko.MissingHostKeyPolicy):
    """Refuse a host whose key is not in ``known_hosts``; with ``accept_new``, add it loudly.

    paramiko calls this only when the file has no key for the host (a changed key is
    paramiko's BadHostKeyException, turned into HostKeyRefused by `NetmikoExec.open`).
    """

    def __init__(self, known_hosts: Path, host: str, port: int, accept_new: bool) -> None:
        self.known_hosts, self.host, self.port = known_hosts, host, port
        self.accept_new = accept_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        if self.accept_new:
            self._add(hostname, key)
            return
        where = (f"{self.known_hosts} has no key for it" if self.known_hosts.exists()
                 else f"{self.known_hosts} does not exist")
        raise HostKeyRefused(
            f"refused: {hostname} offers the unknown SSH host key {fingerprint(key)} and "
            f"{where}, so it is not trusted (nothing was sent). If it is that machine's key, "
            f"add it with {accept_hint(self.host, self.port, key, self.known_hosts)}, or "
            f"accept new keys for one run with {ACCEPT_NEW_ENV}=1 (each one is printed)."
        )

    def _add(self, hostname: str, key: paramiko.PKey) -> None:
        with _known_hosts_lock:
            self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.known_hosts, "a") as out:
                out.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        print(f"warning: {ACCEPT_NEW_ENV}=1: trusting the NEW SSH host key of {hostname} "
              f"({fingerprint(key)}) without verification; added to {self.known_hosts}",
              file=sys.stderr, flush=True)


def changed_key_error(exc: paramiko.BadHostKeyException, host: str, port: int,
                      known_hosts: Path) -> HostKeyRefused:
    """HostKeyRefused for a key that differs from the pinned one."""
    name = known_hosts_name(host, port)
    return HostKeyRefused(
        f"refused: the SSH host key of {exc.hostname} has CHANGED: it offers "
        f"{fingerprint(exc.key)} but {known_hosts} pins {fingerprint(exc.expected_key)} for "
        f"it (a machine in the middle, or a reinstalled one; nothing was sent). Only if the "
        f"new key is verified: `ssh-keygen -f {known_hosts} -R '{name}'`, then "
        f"{accept_hint(host, port, exc.key, known_hosts)}."
    )


def dial_parameters(options: ConnectionOptions) -> dict[str, Any]:
    """netmiko ConnectHandler's arguments for these options (extras override the rest).

    The one place that says what is dialled: the lab guard checks `dialled(...)` of this.
    """
    parameters: dict[str, Any] = {"host": options.hostname, "username": options.username,
                                  "password": options.password, "port": options.port or 22}
    if options.platform is not None:
        parameters["device_type"] = napalm_to_netmiko_map.get(options.platform, options.platform)
    parameters.update(options.extras or {})
    parameters.pop(HOST_KEY_POLICY, None)
    return parameters


def dialled(parameters: dict[str, Any]) -> tuple[str, int]:
    """The address and port netmiko connects to for these ConnectHandler arguments."""
    address = parameters.get("ip") or parameters.get("host") or ""
    return str(address).strip(), int(parameters.get("port") or 22)


def known_hosts_file(extras: dict[str, Any]) -> Path:
    """The known_hosts file the host is checked against."""
    return Path(str(extras.get("alt_key_file") or DEFAULT_KNOWN_HOSTS)).expanduser()


class NetmikoExec:
    """netmiko ConnectHandler, connected (SSH + shell channel) but not prompt-prepared."""

    def open(
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Config | None = None,
    ) -> None:
        extras = extras or {}
        options = ConnectionOptions(hostname, port, username, password, platform, extras)
        parameters = dial_parameters(options)
        host, port = dialled(parameters)
        known_hosts = known_hosts_file(extras)
        parameters.update(ssh_strict=True, system_host_keys=False, alt_host_keys=True,
                          alt_key_file=str(known_hosts))
        connection = ConnectHandler(**parameters, auto_connect=False)
        # netmiko builds its paramiko client with this policy (ssh_strict=True: RejectPolicy).
        connection.key_policy = StrictHostKeys(
            known_hosts, host, port, extras.get(HOST_KEY_POLICY) == "accept-new")
        try:
            connection.establish_connection()
        except Exception as exc:
            connection.disconnect()  # also drops netmiko's per-connection log filter
            cause = exc.__context__  # netmiko re-raises paramiko's errors as its own
            if isinstance(exc, NetmikoTimeoutException) and isinstance(
                    cause, paramiko.BadHostKeyException):
                raise changed_key_error(cause, host, port, known_hosts) from cause
            raise
        self.connection = connection

    def close(self) -> None:
        self.connection.disconnect()


def accept_new_host_keys() -> bool:
    """Whether this run trusts unknown host keys (TP5_ACCEPT_NEW_HOST_KEYS=1)."""
    return os.environ.get(ACCEPT_NEW_ENV, "") == "1"


def share_netmiko_options(nr: Nornir, accept_new: bool = False) -> None:
    """Give every host's `netmiko_exec` connection its resolved `netmiko` options, and the
    host-key policy (accept_new: unknown keys are added to known_hosts, with a warning)."""
    policy = "accept-new" if accept_new else "strict"
    for host in nr.inventory.hosts.values():
        options = host.get_connection_parameters("netmiko")
        options.extras = {**(options.extras or {}), HOST_KEY_POLICY: policy}
        host.connection_options[CONNECTION] = options
