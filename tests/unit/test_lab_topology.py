"""The lab's checks and naming, without building anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.settings import load_settings
from tp5lab import control
from tp5lab.control import LabError, require_root_and_tools
from tp5lab.inventory_factory import write_inventory
from tp5lab.topology import lab_mac, load_nodes


def test_without_root_the_lab_says_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root.*sudo"):
        require_root_and_tools()


def test_without_the_packages_the_lab_names_them_and_the_setup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(control.os, "geteuid", lambda: 0)
    monkeypatch.setattr(control.shutil, "which",
                        lambda tool: None if tool in ("tini", "sshd") else f"/usr/bin/{tool}")
    with pytest.raises(LabError, match=r"missing on this machine: tini, sshd; run `make setup`"):
        require_root_and_tools()


def test_nodes_follow_the_inventory_with_short_interface_names(tmp_path: Path) -> None:
    nodes = load_nodes(load_settings(write_inventory(tmp_path, 50)))
    assert len(nodes) == 54 and nodes[49].name == "web50" and nodes[49].address == "10.5.1.60"
    assert nodes[0].fqdn == "web1.tp5.b2" and nodes[0].netns == "tp5-web1"
    veths = {n.veth for n in nodes} | {n.veth_peer for n in nodes}
    assert len(veths) == 108 and all(len(v) <= 15 for v in veths)


@pytest.mark.parametrize("address", ["10.6.0.11", "10.5.1.1"])
def test_a_node_outside_the_lab_network_or_on_the_bridge_is_refused(
    tmp_path: Path, address: str
) -> None:
    config = write_inventory(tmp_path, 3, host_changes={"web2": {"hostname": address}})
    with pytest.raises(LabError, match=rf"not a free address of the lab network.*web2 \({address}"):
        control.Lab(load_settings(config))


def test_stray_nodes_are_the_lab_nodes_missing_from_the_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Namespaces tp5-NAME and node folders whose NAME is not in this inventory."""
    lab = control.Lab(load_settings(write_inventory(tmp_path / "inv", 3)))
    nodes_dir = tmp_path / "nodes"
    for name in ("web2", "web12", "db1"):
        (nodes_dir / name).mkdir(parents=True)
    (nodes_dir / "console.log").write_text("")  # a file, not a node folder
    monkeypatch.setattr(control.paths, "NODES_DIR", nodes_dir)
    monkeypatch.setattr(control.Lab, "_netns_names",
                        lambda _self: {"tp5-web1", "tp5-web10", "tp5-web4", "other-ns"})
    assert lab.stray_nodes() == ["web4", "web10", "web12"]


def test_a_node_mac_follows_its_address_and_is_locally_administered(tmp_path: Path) -> None:
    nodes = load_nodes(load_settings(write_inventory(tmp_path, 20)))
    macs = [n.mac for n in nodes]
    assert len(set(macs)) == len(nodes)  # one per address
    web4 = next(n for n in nodes if n.name == "web4")
    assert web4.mac == "02:00:0a:05:01:0e" == lab_mac("10.5.1.14")
    assert all(int(m.split(":")[0], 16) & 0b11 == 0b10 for m in macs)  # local, unicast
