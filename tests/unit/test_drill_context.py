"""The drill's context is read once from the inventory (no connection, no lab needed on
`target: real`), and bad requests are refused before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.core.settings import ProjectError, Settings, load_settings
from tasks.drill.context import DrillOptions, build_context
from tasks.drill.vrrp_analysis import CaptureFileError, read_capture
from tp5lab.inventory_factory import write_inventory


def real_settings(tmp_path: Path, changes: dict | None = None, webs: int = 3) -> Settings:
    config = write_inventory(tmp_path, webs, changes)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["target"] = "real"
    config.write_text(yaml.safe_dump(raw))
    return load_settings(config)


def test_the_context_comes_from_the_inventory(tmp_path: Path) -> None:
    settings = real_settings(tmp_path, {"rp": {"vip": "10.5.1.120",
                                               "vrrp_profile": "fast"}}, webs=4)
    ctx = build_context(settings, "rp", DrillOptions())
    assert ctx.vip == "10.5.1.120"
    assert ctx.master == "rp1" and ctx.preempt
    assert dict(ctx.priorities) == {"rp1": 150, "rp2": 100}
    assert sorted(ctx.nr.inventory.hosts) == ["rp1", "rp2"]
    assert ctx.web_fqdns == tuple(f"web{i}.tp5.b2" for i in range(1, 5))
    assert (ctx.vrrp_version, ctx.advert_int, ctx.interface) == (3, 0.1, "eth0")
    assert ctx.names["10.5.1.111"] == "rp1" and ctx.names["10.5.1.14"] == "web4"
    assert ctx.lab is None and ctx.bridge is None and ctx.iface is None


def test_without_preemption_nobody_is_expected_to_hold_the_vip(tmp_path: Path) -> None:
    ctx = build_context(real_settings(tmp_path, {"rp": {"vrrp_preempt": False,
                                                        "vrrp_preempt_delay": 0}}),
                        "rp", DrillOptions())
    assert ctx.master is None and not ctx.preempt


@pytest.mark.parametrize(("group", "target", "options", "message"), [
    ("db", None, DrillOptions(), "--group db: not VRRP routers"),
    ("nosuch", None, DrillOptions(), "--group nosuch: 'nosuch' cannot be drilled"),
    ("web", None, DrillOptions(), "--group web: not VRRP routers"),
    ("rp", "web1", DrillOptions(), "--target web1: not a host of group rp"),
    ("rp", "rp3", DrillOptions(), "--target rp3: not a host of group rp"),
    ("rp", None, DrillOptions(capture=True), "--capture on real machines needs --iface"),
])
def test_bad_requests_are_refused_with_exit_2(tmp_path: Path, group: str, target: str | None,
                                              options: DrillOptions, message: str) -> None:
    with pytest.raises(ProjectError) as err:
        build_context(real_settings(tmp_path), group, options, target=target)
    assert err.value.exit_code == 2 and message in str(err.value)


def test_capture_on_real_machines_with_an_interface(tmp_path: Path) -> None:
    ctx = build_context(real_settings(tmp_path), "rp", DrillOptions(capture=True, iface="eth1"))
    assert ctx.iface == "eth1"


@pytest.mark.parametrize("content", [b"", b"text\n", b"\xd4\xc3\xb2\xa1\x02\x00", bytes(100)])
def test_read_capture_names_a_file_that_is_not_a_capture(tmp_path: Path,
                                                         content: bytes) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureFileError, match=str(path)):
        read_capture(path)
    with pytest.raises(CaptureFileError, match="no such file"):
        read_capture(tmp_path / "missing.pcap")
