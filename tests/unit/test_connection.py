"""The `netmiko_exec` connection plugin against an in-process SSH server on loopback.

A paramiko server (password auth, a shell channel) stands in for a host, so that the host-key
checks run for real: unknown key, changed key, the accept-new opt-in, and a trusted key.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import paramiko
import pytest
from nornir.core.plugins.connections import ConnectionPluginRegister

from tasks.core.connection import (
    CONNECTION,
    HOST_KEY_POLICY,
    HostKeyRefused,
    NetmikoExec,
    fingerprint,
)


class _Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = (username, password) == ("tp5", "secret")
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        return True


class SshServer:
    """An SSH server on 127.0.0.1 (a free port) presenting ``host_key``."""

    def __init__(self, host_key: paramiko.PKey) -> None:
        self.host_key = host_key
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(client)
            transport.add_server_key(self.host_key)
            self.transports.append(transport)
            try:
                transport.start_server(server=_Server())
            except (paramiko.SSHException, OSError, EOFError):  # the client refused our key
                # and left, or hung up before the handshake
                transport.close()

    def close(self) -> None:
        self.listener.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def server() -> Iterator[SshServer]:
    running = SshServer(paramiko.ECDSAKey.generate())
    yield running
    running.close()


def known_hosts_line(server: SshServer, key: paramiko.PKey) -> str:
    return f"[127.0.0.1]:{server.port} {key.get_name()} {key.get_base64()}\n"


def open_plugin(server: SshServer, known_hosts: Path, policy: str = "strict") -> NetmikoExec:
    plugin = NetmikoExec()
    plugin.open("127.0.0.1", "tp5", "secret", server.port, "linux",
                extras={"alt_key_file": str(known_hosts), "conn_timeout": 5,
                        "use_keys": False, "allow_agent": False, HOST_KEY_POLICY: policy})
    return plugin


def test_the_plugin_is_a_nornir_entry_point() -> None:
    points = {p.name: p for p in entry_points(group="nornir.plugins.connections")}
    assert points[CONNECTION].load() is NetmikoExec
    ConnectionPluginRegister.auto_register()
    assert ConnectionPluginRegister.available[CONNECTION] is NetmikoExec


def test_a_trusted_key_opens_a_session_without_prompt_preparation(
    server: SshServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line(server, server.host_key))
    plugin = open_plugin(server, known_hosts)
    try:
        transport = plugin.connection.remote_conn.get_transport()
        assert transport.is_authenticated()
        assert transport.get_remote_server_key() == server.host_key
        assert plugin.connection.base_prompt == ""  # netmiko never looked for a prompt
    finally:
        plugin.close()


def test_an_unknown_key_is_refused_with_the_key_the_file_and_the_fix(
    server: SshServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "missing" / "known_hosts"
    with pytest.raises(HostKeyRefused) as refused:
        open_plugin(server, known_hosts)
    message = str(refused.value)
    assert "\n" not in message  # callers that keep one line keep all of it
    assert f"refused: [127.0.0.1]:{server.port} offers the unknown SSH host key " \
        f"{fingerprint(server.host_key)}" in message
    assert f"{known_hosts} does not exist" in message
    assert (f"ssh-keyscan -p {server.port} -t ecdsa-sha2-nistp256 127.0.0.1 >> {known_hosts}"
            in message)
    assert "TP5_ACCEPT_NEW_HOST_KEYS=1" in message
    assert not known_hosts.exists()


def test_a_changed_key_is_refused_even_with_the_accept_new_opt_in(
    server: SshServer, tmp_path: Path
) -> None:
    pinned = paramiko.ECDSAKey.generate()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line(server, pinned))
    for policy in ("strict", "accept-new"):
        with pytest.raises(HostKeyRefused) as refused:
            open_plugin(server, known_hosts, policy)
        message = str(refused.value)
        assert f"has CHANGED: it offers {fingerprint(server.host_key)} but {known_hosts} " \
            f"pins {fingerprint(pinned)}" in message
        assert f"ssh-keygen -f {known_hosts} -R '[127.0.0.1]:{server.port}'" in message
        assert "does not match" not in message  # not rewritten by older error describers
    assert known_hosts.read_text() == known_hosts_line(server, pinned)


def test_accept_new_records_the_key_and_warns(
    server: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"
    open_plugin(server, known_hosts, "accept-new").close()
    assert known_hosts.read_text() == known_hosts_line(server, server.host_key)
    warning = capsys.readouterr().err
    assert (f"warning: TP5_ACCEPT_NEW_HOST_KEYS=1: trusting the NEW SSH host key of "
            f"[127.0.0.1]:{server.port} ({fingerprint(server.host_key)})") in warning
    open_plugin(server, known_hosts).close()  # now known: strict mode accepts it, silently
    assert capsys.readouterr().err == ""


def test_fingerprint_is_the_one_ssh_keygen_prints(tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    public = tmp_path / "key.pub"
    public.write_text(f"{key.get_name()} {key.get_base64()}\n")
    listed = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True,
                            text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("ssh-keygen is not installed")
    assert fingerprint(key).split()[1] == listed.stdout.split()[1]
