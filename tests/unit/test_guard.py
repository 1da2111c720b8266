"""The lab guard: nothing is sent unless the lab bridge carries it, and no inventory setting
redirects the SSH connection away from what the guard checks (no root needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.core.connection import CONNECTION, dial_parameters, dialled
from tasks.core.nornir_build import build_nornir, dialled_addresses
from tasks.core.settings import REPO_ROOT, ProjectError
from tp5lab.inventory_factory import write_inventory


def test_runbooks_refuse_when_the_lab_bridge_is_missing(tmp_path: Path) -> None:
    config = write_inventory(tmp_path, 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["lab"]["bridge"] = "tp5nobridge"
    config.write_text(yaml.safe_dump(raw))
    for runbook in ("deploy.py", "failover_drill.py", "db_status.py"):
        proc = subprocess.run([sys.executable, f"runbooks/{runbook}", "--config", str(config)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 3, (runbook, proc.stdout, proc.stderr)
        assert "refusing to connect" in proc.stderr
        assert "the lab bridge tp5nobridge is not up" in proc.stderr


# -- settings that redirect the SSH connection: refused before any connection ------------------

def build_with(tmp_path: Path, change: dict, target: str = "lab",
               user_defined: dict | None = None) -> ProjectError:
    """The ProjectError build_nornir raises when web2 gets ``change`` (fails if none)."""
    config = write_inventory(tmp_path, 3, host_changes={"web2": change})
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"].update(target=target, **(user_defined or {}))
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProjectError) as refused:
        build_nornir(config)
    return refused.value


def extras(**values: object) -> dict:
    return {"connection_options": {"netmiko": {"extras": values}}}


REDIRECTS = {
    "extras host": (extras(host="10.9.9.9"), "connection_options.netmiko.extras.host"),
    "extras ip": (extras(ip="10.9.9.9"), "connection_options.netmiko.extras.ip"),
    "extras port": (extras(port=2222), "connection_options.netmiko.extras.port"),
    "ssh_config_file": (extras(ssh_config_file="/tmp/ssh_config"),
                        "connection_options.netmiko.extras.ssh_config_file"),
    "proxy": (extras(proxy_command="nc 10.9.9.9 22"),
              "connection_options.netmiko.extras.proxy_command"),
    "option hostname": ({"connection_options": {"netmiko": {"hostname": "10.9.9.9"}}},
                        "connection_options.netmiko.hostname"),
    "option port": ({"connection_options": {"netmiko": {"port": 2222}}},
                    "connection_options.netmiko.port"),
    "host port": ({"port": 2222}, "port = 2222"),
}


@pytest.mark.parametrize("variant", sorted(REDIRECTS))
def test_lab_mode_refuses_a_redirected_connection(variant: str, tmp_path: Path) -> None:
    change, field = REDIRECTS[variant]
    error = build_with(tmp_path, change)
    assert error.exit_code == 2
    assert f"host web2: {field}" in str(error) and "refused in lab mode" in str(error)
    assert "web1" not in str(error)


@pytest.mark.parametrize("change, expected", [
    (extras(sock="/tmp/socket"), "extras.sock: not settable from the inventory"),
    (extras(ssh_strict=False), "extras.ssh_strict = False: host keys are always checked"),
    ({"connection_options": {"netmiko": {"platform": "generic_telnet"}}},
     "device type 'generic_telnet': only SSH is supported"),
    (extras(ssh_config_file="/tmp/ssh_config"),
     "unless config.yaml sets user_defined.allow_ssh_config_file: true"),
])
def test_real_mode_refuses_unsafe_connection_settings(change: dict, expected: str,
                                                      tmp_path: Path) -> None:
    error = build_with(tmp_path, change, target="real")
    assert error.exit_code == 2 and "host web2: " in str(error) and expected in str(error)


def test_real_mode_allows_an_ssh_config_file_only_with_the_opt_in(tmp_path: Path) -> None:
    config = write_inventory(tmp_path, 3, host_changes={
        "web2": extras(ssh_config_file="/tmp/ssh_config")})
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"].update(target="real", allow_ssh_config_file=True)
    config.write_text(yaml.safe_dump(raw))
    nr = build_nornir(config)  # no connection is opened here
    assert nr.inventory.hosts["web2"].get_connection_parameters(CONNECTION).extras[
        "ssh_config_file"] == "/tmp/ssh_config"
    # The opt-in is for real machines: the lab still refuses it.
    raw["user_defined"]["target"] = "lab"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProjectError, match="extras.ssh_config_file .* refused in lab mode"):
        build_nornir(config)


def test_the_deploy_runbook_exits_2_naming_the_redirect(tmp_path: Path) -> None:
    config = write_inventory(tmp_path, 3, host_changes={"rp1": extras(host="192.0.2.1")})
    proc = subprocess.run([sys.executable, "runbooks/deploy.py", "--config", str(config)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "host rp1: connection_options.netmiko.extras.host = '192.0.2.1'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_lab_route_check_is_given_the_dialled_addresses(tmp_path: Path) -> None:
    nr = build_nornir(write_inventory(tmp_path, 3), check_lab=False)
    assert dialled_addresses(nr) == [h.hostname for h in nr.inventory.hosts.values()]
    options = nr.inventory.hosts["web2"].get_connection_parameters(CONNECTION)
    assert dialled(dial_parameters(options)) == ("10.5.1.12", 22)
    options.extras = {**options.extras, "host": "10.9.9.9", "port": 2222}
    assert dialled(dial_parameters(options)) == ("10.9.9.9", 2222)
    options.extras = {**options.extras, "ip": "10.8.8.8"}  # netmiko: ip wins over host
    assert dialled(dial_parameters(options)) == ("10.8.8.8", 2222)


def test_port_22_spelled_out_is_not_a_redirect(tmp_path: Path) -> None:
    config = write_inventory(tmp_path, 3, host_changes={
        "web1": {"port": 22}, "web2": {"connection_options": {"netmiko": {"port": 22}}}})
    nr = build_nornir(config, check_lab=False)
    assert sorted(nr.inventory.hosts) == ["db1", "db2", "rp1", "rp2", "web1", "web2", "web3"]
