"""The app's block in a hosts file: written, replaced, removed, every other byte kept."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tasks.core.settings import REPO_ROOT, ProjectError, load_settings
from tp5lab import control, etc_hosts, paths
from tp5lab.etc_hosts import AppEntry, checked_entry
from tp5lab.inventory_factory import write_inventory
from tp5lab.topology import Node

ENTRY = AppEntry("app_nulle.tp5.b2", "10.5.1.110")
CONFIG = Path("/srv/project/config.yaml")
ORIGINAL = b"127.0.0.1\tlocalhost\r\n# a comment\n\xff\xfe odd bytes\n10.0.0.9 other.example\n"


def hosts(tmp_path: Path, content: bytes = ORIGINAL, mode: int = 0o644) -> Path:
    path = tmp_path / "hosts"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_install_appends_one_block_and_remove_restores_every_byte(tmp_path: Path) -> None:
    path = hosts(tmp_path)
    assert etc_hosts.install(ENTRY, CONFIG, path)
    text = path.read_bytes()
    assert text.startswith(ORIGINAL)
    added = text[len(ORIGINAL):].decode().splitlines()
    assert added[0].startswith("# BEGIN tp5ha lab (config /srv/project/config.yaml)")
    assert added[1:] == ["10.5.1.110\tapp_nulle.tp5.b2",
                         "# END tp5ha lab (config /srv/project/config.yaml)"]
    assert etc_hosts.listed(path) == ["10.5.1.110\tapp_nulle.tp5.b2"]
    assert etc_hosts.remove(path)
    assert path.read_bytes() == ORIGINAL


def test_install_again_replaces_the_block_in_place(tmp_path: Path) -> None:
    path = hosts(tmp_path)
    etc_hosts.install(ENTRY, CONFIG, path)
    path.write_bytes(path.read_bytes() + b"10.0.0.8 added.later\n")
    first = path.read_bytes()
    assert not etc_hosts.install(ENTRY, CONFIG, path)  # same block: file untouched
    assert path.read_bytes() == first
    assert etc_hosts.install(AppEntry("shop.tp5.b2", "10.5.1.120"), Path("/tmp/other.yaml"), path)
    text = path.read_text(errors="surrogateescape")
    assert text.count("# BEGIN tp5ha lab") == 1 and "/tmp/other.yaml" in text
    assert "app_nulle" not in text and text.endswith("10.0.0.8 added.later\n")
    assert etc_hosts.listed(path) == ["10.5.1.120\tshop.tp5.b2"]
    etc_hosts.remove(path)
    assert path.read_bytes() == ORIGINAL + b"10.0.0.8 added.later\n"


@pytest.mark.parametrize("content", [b"", b"127.0.0.1 localhost", b"a\nb\n10.0.0.9 last"])
def test_a_file_without_final_newline_is_restored_exactly(tmp_path: Path, content: bytes) -> None:
    path = hosts(tmp_path, content)
    etc_hosts.install(ENTRY, CONFIG, path)
    assert etc_hosts.listed(path) == [ENTRY.line]
    assert "\n10.5.1.110\tapp_nulle.tp5.b2\n" in path.read_text() or not content
    etc_hosts.remove(path)
    assert path.read_bytes() == content


def test_a_begin_line_without_end_drops_only_that_line(tmp_path: Path) -> None:
    path = hosts(tmp_path, b"a\n# BEGIN tp5ha lab (config x)\n10.0.0.7 kept\nb\n")
    assert etc_hosts.remove(path)
    assert path.read_bytes() == b"a\n10.0.0.7 kept\nb\n"


def test_remove_without_a_block_does_not_write(tmp_path: Path) -> None:
    path = hosts(tmp_path)
    inode = path.stat().st_ino
    assert not etc_hosts.remove(path)
    assert path.stat().st_ino == inode and path.read_bytes() == ORIGINAL
    assert not etc_hosts.remove(tmp_path / "missing")


def test_the_file_is_renamed_over_with_its_mode_and_owner(tmp_path: Path) -> None:
    path = hosts(tmp_path, mode=0o640)
    if os.geteuid() == 0:
        os.chown(path, 1234, 4321)
    before = path.stat()
    etc_hosts.install(ENTRY, CONFIG, path)
    after = path.stat()
    assert after.st_ino != before.st_ino  # a new file took its place (atomic rename)
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid,
                                                           before.st_gid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # no temp file left


def test_a_file_that_cannot_be_renamed_over_is_rewritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As /etc/hosts bind-mounted into a container: rename() over it fails with EBUSY."""
    path = hosts(tmp_path)
    inode = path.stat().st_ino

    def busy(_src: str, _dst: str) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(etc_hosts.os, "replace", busy)
    etc_hosts.install(ENTRY, CONFIG, path)
    assert path.stat().st_ino == inode and etc_hosts.listed(path) == [ENTRY.line]
    etc_hosts.remove(path)
    assert path.read_bytes() == ORIGINAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


def test_another_write_error_is_a_clear_error_and_leaves_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = hosts(tmp_path)

    def full(_src: str, _dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(etc_hosts.os, "replace", full)
    with pytest.raises(ProjectError, match=r"hosts: cannot update the tp5ha lab block: No space"):
        etc_hosts.install(ENTRY, CONFIG, path)
    assert path.read_bytes() == ORIGINAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


def test_a_symlinked_hosts_file_is_written_through_the_link(tmp_path: Path) -> None:
    real = hosts(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real)
    etc_hosts.install(ENTRY, CONFIG, link)
    assert link.is_symlink() and etc_hosts.listed(real) == [ENTRY.line]


def test_a_config_path_with_a_newline_stays_on_the_marker_line(tmp_path: Path) -> None:
    path = hosts(tmp_path, b"")
    etc_hosts.install(ENTRY, Path("/tmp/a\n10.6.6.6 evil/config.yaml"), path)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and lines[1] == ENTRY.line and "evil" in lines[0]


@pytest.mark.parametrize("name", ["app_nulle.tp5.b2\n10.9.9.9 evil", "app nulle.tp5.b2", "",
                                  "app.tp5.b2.", "-app.tp5.b2", "ca\u0301fe.b2", "a" * 64,
                                  ".".join(["a" * 60] * 5), None])
def test_a_name_that_is_not_a_plain_dns_name_is_refused(name: object) -> None:
    with pytest.raises(ProjectError, match=r"groups.yaml: app name .* is not a plain DNS name"):
        checked_entry(name, "10.5.1.110", "groups.yaml")


@pytest.mark.parametrize("address", ["10.5.1.110\n", "010.5.1.110", "::1", "10.5.1", "",
                                     " 10.5.1.110", 167051630, None])
def test_an_address_that_is_not_ipv4_is_refused(address: object) -> None:
    with pytest.raises(ProjectError, match=r"field vip .* is not an IPv4 address") as err:
        checked_entry("app_nulle.tp5.b2", address, "groups.yaml")
    assert err.value.exit_code == 2


def test_the_entry_comes_from_the_inventory(tmp_path: Path) -> None:
    assert etc_hosts.app_entry(load_settings(REPO_ROOT / "config.yaml")) == ENTRY
    moved = write_inventory(tmp_path, 3, {"rp": {"vip": "10.5.1.120"}})
    assert etc_hosts.app_entry(load_settings(moved)) == AppEntry("app_nulle.tp5.b2",
                                                                 "10.5.1.120")


def test_nodes_get_the_app_name_in_their_hosts_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "NODES_DIR", tmp_path)
    lab = control.Lab(load_settings(REPO_ROOT / "config.yaml"))
    node: Node = lab.node("web1")
    (tmp_path / "web1").mkdir()
    lab._write_hosts_file(node, ENTRY)
    lines = (tmp_path / "web1" / "hosts").read_text().splitlines()
    assert "10.5.1.110\tapp_nulle.tp5.b2" in lines and "10.5.1.12\tweb2.tp5.b2 web2" in lines
    lab._write_hosts_file(node)
    assert "app_nulle" not in (tmp_path / "web1" / "hosts").read_text()
