"""Safety on the real lab: pinned host keys, strict host keys on real machines, what a node can
see and write, and the web tier's hygiene (no banners, cookie flags, trusted X-Real-IP)."""

from __future__ import annotations

import http.client
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core.connection import ACCEPT_NEW_ENV
from tasks.core.guard import check_addresses
from tasks.core.nornir_build import build_nornir
from tasks.core.remote import run_command
from tasks.core.settings import load_settings
from tp5lab import paths
from tp5lab.control import Lab
from tp5lab.inventory_factory import write_inventory

pytestmark = pytest.mark.lab

VIP = "10.5.1.110"


def test_a_host_whose_key_does_not_match_the_pinned_one_is_refused_alone(
    deployed: object, lab: Lab, deploy: Any
) -> None:
    pinned = paths.KNOWN_HOSTS.read_text()
    impostor = (paths.node_dir("web1") / "ssh_host_ed25519_key.pub").read_text().split()
    lines = [f"10.5.1.12 {impostor[0]} {impostor[1]}" if line.startswith("10.5.1.12 ")
             else line for line in pinned.splitlines()]
    try:
        paths.KNOWN_HOSTS.write_text("\n".join(lines) + "\n")
        run = deploy("--host", "web2", "--host", "web3")
        assert run.returncode != 0
        assert run.status("web2") == "failed" and run.status("web3") == "unchanged"
        error = run.summary["hosts"]["web2"]["error"]
        # The message says which key, which file, and how to replace the pinned one.
        offered = subprocess.run(
            ["ssh-keygen", "-lf", str(paths.node_dir("web2") / "ssh_host_ed25519_key.pub")],
            capture_output=True, text=True, check=True).stdout.split()[1]
        assert "SSH host key of 10.5.1.12 has CHANGED" in error, error
        assert offered in error and str(paths.KNOWN_HOSTS) in error, error
        assert f"ssh-keygen -f {paths.KNOWN_HOSTS} -R '10.5.1.12'" in error, error
    finally:
        paths.KNOWN_HOSTS.write_text(pinned)
    again = deploy("--host", "web2")
    assert again.returncode == 0 and again.status("web2") == "unchanged"


# -- real machines: strict host keys from the inventory's known_hosts --------------------------

def real_mode_config(tmp_path: Path, known_hosts: Path) -> Path:
    """The lab's nodes described as real machines: lab key, the given known_hosts file."""
    config = write_inventory(tmp_path, 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["target"] = "real"
    config.write_text(yaml.safe_dump(raw))
    defaults_file = tmp_path / "inventory" / "defaults.yaml"
    defaults = yaml.safe_load(defaults_file.read_text())
    defaults["connection_options"]["netmiko"]["extras"].update(
        use_keys=True, key_file=str(paths.KEY_FILE), allow_agent=False,
        alt_key_file=str(known_hosts))
    defaults_file.write_text(yaml.safe_dump(defaults))
    return config


def run_true(config: Path, hosts: list[str]) -> dict[str, BaseException | None]:
    """Open each host's session and run `true`; host -> exception (None: it ran).

    Real mode has no lab guard, so the routes are checked here first: the lab's addresses
    exist only behind its bridge."""
    settings = load_settings(config)
    nr = build_nornir(settings, hosts=hosts)
    addresses = [h.hostname for h in nr.inventory.hosts.values()]
    assert check_addresses("tp5br0", addresses) == []
    result = nr.run(task=lambda task: run_command(task, "true").rc)
    nr.close_connections()
    return {name: r.exception if r.failed else None for name, r in result.items()}


def test_real_mode_refuses_an_unknown_host_key(lab: Lab, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ACCEPT_NEW_ENV, raising=False)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    outcome = run_true(real_mode_config(tmp_path, known_hosts), ["web1", "rp2"])
    for name, address in (("web1", "10.5.1.11"), ("rp2", "10.5.1.112")):
        message = str(outcome[name])
        assert f"refused: {address} offers the unknown SSH host key ssh-ed25519 SHA256:" \
            in message, message
        assert f"ssh-keyscan -p 22 -t ssh-ed25519 {address} >> {known_hosts}" in message
        assert ACCEPT_NEW_ENV in message
    assert known_hosts.read_text() == ""


def test_real_mode_accepts_new_keys_only_when_asked_and_says_so(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"  # the folder does not exist yet
    config = real_mode_config(tmp_path, known_hosts)
    monkeypatch.setenv(ACCEPT_NEW_ENV, "1")
    assert run_true(config, ["web3"]) == {"web3": None}
    warning = capfd.readouterr().err
    assert re.search(rf"warning: {ACCEPT_NEW_ENV}=1: trusting the NEW SSH host key of "
                     r"10\.5\.1\.13 \(ssh-ed25519 SHA256:\S+\)", warning), warning
    # What was recorded is the node's real key (the one the lab pins).
    pinned = [line for line in paths.KNOWN_HOSTS.read_text().splitlines()
              if line.startswith("10.5.1.13 ")]
    assert known_hosts.read_text().splitlines() == pinned
    # Without the opt-in, the recorded key is now trusted, silently; others are still refused.
    monkeypatch.delenv(ACCEPT_NEW_ENV)
    outcome = run_true(config, ["web3", "web2"])
    assert outcome["web3"] is None and "unknown SSH host key" in str(outcome["web2"])
    assert "warning" not in capfd.readouterr().err


def test_lab_mode_never_extends_the_pinned_keys(lab: Lab, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = paths.KNOWN_HOSTS.read_text()
    kept = "\n".join(line for line in pinned.splitlines() if not line.startswith("10.5.1.11 "))
    monkeypatch.setenv(ACCEPT_NEW_ENV, "1")
    try:
        paths.KNOWN_HOSTS.write_text(kept + "\n")
        nr = build_nornir(hosts=["web1"])
        result = nr.run(task=lambda task: run_command(task, "true").rc)
        nr.close_connections()
        assert "unknown SSH host key" in str(result["web1"].exception)
        assert paths.KNOWN_HOSTS.read_text() == kept + "\n"
    finally:
        paths.KNOWN_HOSTS.write_text(pinned)


# -- what a node sees of the controller -------------------------------------------------------

def inside(lab: Lab, host: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab.nsenter_argv(host, ["sh", "-c", command]), capture_output=True,
                          text=True, check=False)


def test_a_node_cannot_read_the_controller_state_nor_write_the_system(
    deployed: object, lab: Lab
) -> None:
    assert paths.KEY_FILE.exists() and any(paths.SECRETS_DIR.iterdir())  # on the controller
    for host in ("web1", "db1"):
        for secret in (paths.KEY_FILE, paths.SECRETS_DIR, paths.node_dir("db2")):
            probe = inside(lab, host, f"ls -d {secret}")
            assert probe.returncode != 0, (host, secret, probe.stdout)
        assert inside(lab, host, f"ls -A {paths.STATE_DIR}").stdout == ""
        for folder in ("/usr", "/usr/sbin", "/bin"):
            probe = inside(lab, host, f"touch {folder}/tp5-probe")
            assert probe.returncode != 0 and "Read-only file system" in probe.stderr, probe
        assert not Path("/usr/tp5-probe").exists()
        # Its own /etc and /var stay writable (the overlays), and sshd still serves it.
        writable = inside(lab, host, "touch /etc/tp5-probe /var/tp5-probe && "
                                     "rm /etc/tp5-probe /var/tp5-probe")
        assert writable.returncode == 0, writable.stderr
    nr = build_nornir(hosts=["web1", "db1"])
    result = nr.run(task=lambda task: run_command(task, f"ls -A {paths.STATE_DIR}").stdout)
    nr.close_connections()
    assert {name: r.result for name, r in result.items()} == {"web1": "", "db1": ""}


# -- the web tier -------------------------------------------------------------------------------

def get(address: str, path: str = "/",
        headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, str]:
    """One GET through the lab bridge: the response (headers, status) and its body."""
    assert check_addresses("tp5br0", [address]) == []
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response, response.read().decode()
    finally:
        conn.close()


def visit_client(lab: Lab, page: str) -> str:
    """The client address the database recorded for the visit this page reports."""
    visit = re.search(r"^db: visits=\d+ id=(\d+) ", page, re.MULTILINE)
    assert visit, page
    query = f"SELECT client FROM app_nulle.visits WHERE id = {visit.group(1)}"
    out = inside(lab, "db1", f"mysql -N -B -e '{query}'")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_no_version_banners_and_a_strict_session_cookie(deployed: object) -> None:
    for address, server in ((VIP, "nginx"), ("10.5.1.11", "Apache")):
        response, body = get(address)
        assert response.status == 200
        assert response.getheader("Server") == server  # the product only, no version
        assert response.getheader("X-Powered-By") is None
        assert re.match(r"web\d\.tp5\.b2 10\.5\.1\.1\d$", response.getheader("X-Served-By", ""))
        assert "served-by: web" in body
        cookie = response.getheader("Set-Cookie", "")
        assert cookie.startswith("app_nulle_sid=")
        assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie, cookie
    # Strict mode: a session id the server never issued is replaced, not adopted.
    response, _ = get("10.5.1.11", headers={"Cookie": "app_nulle_sid=chosenbytheclient"})
    assert "chosenbytheclient" not in response.getheader("Set-Cookie", "")
    # Error pages carry no signature either.
    missing, body = get("10.5.1.11", "/no-such-page")
    assert missing.status == 404 and "Apache/" not in body and "Server at" not in body, body


def test_x_real_ip_is_trusted_from_the_proxies_only(deployed: object, lab: Lab) -> None:
    spoof = {"X-Real-IP": "192.0.2.66"}
    _, direct = get("10.5.1.11", headers=spoof)
    assert visit_client(lab, direct) == "10.5.1.1"
    # Through the proxies: the client address nginx saw, not the proxy's own.
    _, proxied = get(VIP, headers=spoof)
    assert visit_client(lab, proxied) == "10.5.1.1"
