"""Capture analysis on pcaps built with Scapy, written to disk and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Packet
from scapy.utils import wrpcap

from tasks.drill.vrrp_analysis import (
    CaptureAnalysis,
    analyze_capture,
    decode_adverts,
    expected_takeover,
    find_split_brains,
)

BASE = 1_700_000_000.0
VIP = "10.5.1.110"
RP1, RP1_MAC = "10.5.1.111", "02:00:0a:05:01:6f"
RP2, RP2_MAC = "10.5.1.112", "02:00:0a:05:01:70"
MACS = {RP1: RP1_MAC, RP2: RP2_MAC}
# VRRPv2, backup priority 100: 3 * 1 s + (256 - 100) / 256 s (exact in binary and in µs).
MASTER_DOWN_V2 = 3.609375
SKEW_V2 = 0.609375


def advert(t: float, src: str, prio: int, version: int = 2, adv: int = 1, vrid: int = 51) -> Packet:
    """An advert from ``src`` at BASE + t (``adv``: seconds for v2, centiseconds for v3)."""
    layer_cls = VRRP if version == 2 else VRRPv3
    layer = layer_cls(vrid=vrid, priority=prio, adv=adv, addrlist=[VIP])
    pkt = (
        Ether(src=MACS[src], dst="01:00:5e:00:00:12")
        / IP(src=src, dst="224.0.0.18", proto=112, ttl=255)
        / layer
    )
    pkt.time = BASE + t
    return pkt


def garp(t: float, mac: str, op: int = 1, psrc: str = VIP, pdst: str = VIP) -> Packet:
    """An ARP from ``mac`` at BASE + t."""
    pkt = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=mac, psrc=psrc, pdst=pdst)
    pkt.time = BASE + t
    return pkt


def noise(t: float) -> Packet:
    """A packet that is neither VRRP nor a gratuitous ARP."""
    pkt = Ether() / IP(src="10.5.1.1", dst=VIP) / TCP(dport=80)
    pkt.time = BASE + t
    return pkt


def roundtrip(tmp_path: Path, packets: list[Packet]) -> Path:
    """Write ``packets`` to a pcap (shuffled order is not needed: sorted by analysis)."""
    path = tmp_path / "capture.pcap"
    wrpcap(str(path), packets)
    return path


def crash_capture() -> list[Packet]:
    """rp1 (150) adverts at 0..9 s, crashes at 9.5; rp2 (100) takes over after master-down."""
    pkts = [advert(float(i), RP1, 150) for i in range(10)]
    takeover = 9 + MASTER_DOWN_V2
    pkts += [advert(takeover + i, RP2, 100) for i in range(8)]
    pkts += [garp(takeover + 0.001, RP2_MAC, op=1), garp(takeover + 0.002, RP2_MAC, op=2)]
    pkts += [
        garp(1.0, RP1_MAC, psrc="10.5.1.1", pdst=VIP),  # a plain ARP request for the VIP
        garp(2.0, RP1_MAC, psrc="10.5.1.12", pdst="10.5.1.12"),  # gratuitous, another IP
        noise(3.0),
    ]
    return pkts


def test_crash_failover_with_fault_time(tmp_path: Path) -> None:
    result = analyze_capture(roundtrip(tmp_path, crash_capture()), VIP, fault_time=BASE + 9.5)
    fo = result.failover
    assert fo is not None
    assert (fo.old_master, fo.new_master, fo.kind, fo.vrid) == (RP1, RP2, "crash", 51)
    assert fo.old_last_time == BASE + 9.0
    assert fo.new_first_time == BASE + 9 + MASTER_DOWN_V2
    assert fo.takeover_s == pytest.approx(MASTER_DOWN_V2, abs=1e-6)
    assert fo.fault_to_takeover_s == pytest.approx(MASTER_DOWN_V2 - 0.5, abs=1e-6)
    assert (fo.old_last_priority, fo.new_priority, fo.version, fo.advert_int) == (150, 100, 2, 1.0)
    assert fo.first_garp_time == pytest.approx(BASE + 9 + MASTER_DOWN_V2 + 0.001, abs=1e-6)
    assert result.expected is not None
    assert result.expected.bound_s == MASTER_DOWN_V2
    assert result.takeover_delta_s == pytest.approx(0.0, abs=1e-6)
    assert result.split_brains == ()
    assert result.resignations == ()
    assert result.packet_count == 23


def test_crash_failover_found_without_fault_time(tmp_path: Path) -> None:
    with_fault = analyze_capture(crash_capture(), VIP, fault_time=BASE + 9.5)
    auto = analyze_capture(roundtrip(tmp_path, crash_capture()), VIP)
    assert auto.failover is not None and with_fault.failover is not None
    assert auto.failover.takeover_s == pytest.approx(with_fault.failover.takeover_s, abs=1e-6)
    assert (auto.failover.old_master, auto.failover.new_master) == (RP1, RP2)
    assert auto.failover.fault_time is None and auto.failover.fault_to_takeover_s is None


def test_router_timelines(tmp_path: Path) -> None:
    result = analyze_capture(roundtrip(tmp_path, crash_capture()), VIP)
    rp1, rp2 = result.routers
    assert (rp1.src_ip, rp1.src_mac, rp1.vrid, rp1.version) == (RP1, RP1_MAC, 51, 2)
    assert (rp1.count, rp1.first_time, rp1.last_time) == (10, BASE, BASE + 9)
    assert rp1.priorities == (150,) and rp1.advert_int == 1.0
    assert rp1.median_gap_s == pytest.approx(1.0, abs=1e-6)
    assert (rp2.src_ip, rp2.count, rp2.priorities) == (RP2, 8, (100,))
    assert result.adverts[0].addresses == (VIP,)
    assert result.start_time == BASE and result.end_time == BASE + 9 + MASTER_DOWN_V2 + 7


def test_gratuitous_arps_only_for_vip(tmp_path: Path) -> None:
    result = analyze_capture(roundtrip(tmp_path, crash_capture()), VIP)
    assert [(g.op, g.sender_mac, g.router) for g in result.garps] == [
        ("who-has", RP2_MAC, RP2),
        ("is-at", RP2_MAC, RP2),
    ]


def test_clean_stop_takeover_after_skew(tmp_path: Path) -> None:
    pkts = [advert(float(i), RP1, 150) for i in range(6)]
    pkts.append(advert(5.25, RP1, 0))  # keepalived stopping: priority-0 resignation
    pkts += [advert(5.25 + SKEW_V2 + i, RP2, 100) for i in range(4)]
    result = analyze_capture(roundtrip(tmp_path, pkts), VIP, fault_time=BASE + 5.2)
    fo = result.failover
    assert fo is not None and fo.kind == "clean_stop"
    assert (fo.old_last_time, fo.old_last_priority) == (BASE + 5.25, 0)
    assert fo.takeover_s == pytest.approx(SKEW_V2, abs=1e-6)
    assert result.expected is not None
    assert (result.expected.fault, result.expected.bound_s) == ("clean_stop", SKEW_V2)
    assert [(a.src_ip, a.priority, a.time) for a in result.resignations] == [(RP1, 0, BASE + 5.25)]
    assert result.routers[0].priorities == (0, 150)


def test_vrrpv3_centisecond_interval(tmp_path: Path) -> None:
    # v3, adv=10 centiseconds; backup priority 128: 3 * 0.1 + 128 * 0.1 / 256 = 0.35 s.
    pkts = [advert(i / 10, RP1, 150, version=3, adv=10) for i in range(20)]
    pkts += [advert(1.9 + 0.35 + i / 10, RP2, 128, version=3, adv=10) for i in range(10)]
    result = analyze_capture(roundtrip(tmp_path, pkts), VIP)
    assert {(r.version, r.advert_int) for r in result.routers} == {(3, 0.1)}
    assert result.routers[0].median_gap_s == pytest.approx(0.1, abs=1e-6)
    assert result.adverts[0].addresses == (VIP,)
    fo = result.failover
    assert fo is not None and (fo.kind, fo.version, fo.advert_int) == ("crash", 3, 0.1)
    assert fo.takeover_s == pytest.approx(0.35, abs=1e-6)
    assert result.expected is not None
    assert result.expected.master_down_s == pytest.approx(0.35)
    assert result.takeover_delta_s == pytest.approx(0.0, abs=1e-6)


def test_v2_adv_is_seconds_and_v3_adv_is_centiseconds() -> None:
    v2, v3 = decode_adverts([advert(0.0, RP1, 100, 2, adv=3), advert(1.0, RP2, 100, 3, adv=100)])
    assert (v2.version, v2.advert_int) == (2, 3.0)
    assert (v3.version, v3.advert_int) == (3, 1.0)


def split_brain_capture() -> list[Packet]:
    """rp1 master at 0..20 s; rp2 also advertises at 5.5..12.5 s (8 adverts)."""
    pkts = [advert(float(i), RP1, 150) for i in range(21)]
    pkts += [advert(5.5 + i, RP2, 100) for i in range(8)]
    return pkts


def test_split_brain_detected(tmp_path: Path) -> None:
    result = analyze_capture(roundtrip(tmp_path, split_brain_capture()), VIP)
    assert len(result.split_brains) == 1
    sb = result.split_brains[0]
    assert (sb.vrid, sb.routers) == (51, (RP1, RP2))
    # Claims: rp1 [0, 21], rp2 [5.5, 12.5 + 1]; each sends 8 adverts inside the overlap.
    assert (sb.start, sb.end, sb.duration_s) == (BASE + 5.5, BASE + 13.5, 8.0)
    assert sb.adverts == (8, 8)
    assert result.failover is None  # rp1 never stopped: no takeover


def test_preemption_race_is_not_a_split_brain(tmp_path: Path) -> None:
    # rp2 master; rp1 comes back at 10.5 (higher priority) and rp2 sends one last advert.
    pkts = [advert(float(i), RP2, 100) for i in range(11)] + [advert(10.6, RP2, 100)]
    pkts += [advert(10.5 + i, RP1, 150) for i in range(6)]
    result = analyze_capture(roundtrip(tmp_path, pkts), VIP)
    assert result.split_brains == ()
    fo = result.failover
    assert fo is not None and (fo.old_master, fo.new_master, fo.kind) == (RP2, RP1, "preempted")
    assert fo.takeover_s == pytest.approx(0.5, abs=1e-6)
    assert result.expected is None


def test_split_brain_needs_min_adverts_from_each_side() -> None:
    adverts = decode_adverts(split_brain_capture())
    assert find_split_brains(adverts, min_adverts=9) == []
    assert len(find_split_brains(adverts, min_adverts=8)) == 1


def test_vrid_carrying_the_vip_is_analysed() -> None:
    other = [advert(0.0 + i, RP2, 200, vrid=7) for i in range(30)]
    for pkt in other:
        pkt[VRRP].addrlist = ["10.5.1.250"]
    result = analyze_capture(crash_capture() + other, VIP)
    assert result.vrid == 51
    assert result.failover is not None and result.failover.new_master == RP2


def test_fault_time_selects_the_later_failover() -> None:
    pkts = crash_capture()  # rp1 -> rp2 at 12.6
    pkts += [advert(22.0 + i, RP1, 150) for i in range(3)]  # rp1 back: preempts at 22
    result = analyze_capture(pkts, VIP, fault_time=BASE + 20.0)
    assert result.failover is not None
    assert (result.failover.old_master, result.failover.new_master) == (RP2, RP1)


def test_no_adverts_means_no_failover() -> None:
    result = analyze_capture([noise(0.0)], VIP)
    assert (result.vrid, result.failover, result.expected, result.routers) == (None, None, None, ())


def test_to_dict_is_json_serialisable(tmp_path: Path) -> None:
    result = analyze_capture(roundtrip(tmp_path, crash_capture()), VIP, fault_time=BASE + 9.5)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["failover"]["takeover_s"] == pytest.approx(MASTER_DOWN_V2, abs=1e-6)
    assert data["adverts"][0]["addresses"] == [VIP]
    assert isinstance(result, CaptureAnalysis)


@pytest.mark.parametrize(
    ("version", "advert_int", "prio", "fault", "skew", "bound"),
    [
        (2, 1.0, 100, "crash", 0.609375, 3.609375),
        (2, 1.0, 100, "clean_stop", 0.609375, 0.609375),
        (2, 2.0, 200, "crash", 0.21875, 6.21875),
        (3, 0.1, 100, "crash", 0.0609375, 0.3609375),
        (3, 1.0, 128, "clean_stop", 0.5, 0.5),
    ],
)
def test_expected_takeover(
    version: int, advert_int: float, prio: int, fault: str, skew: float, bound: float
) -> None:
    b = expected_takeover(version, advert_int, prio, fault)  # type: ignore[arg-type]
    assert b.skew_s == pytest.approx(skew)
    assert b.bound_s == pytest.approx(bound)
    assert b.master_down_s == pytest.approx(3 * advert_int + skew)


@pytest.mark.parametrize("args", [(4, 1.0, 100), (2, 0.0, 100), (2, 1.0, 0), (3, 1.0, 256)])
def test_expected_takeover_rejects_bad_input(args: tuple[int, float, int]) -> None:
    with pytest.raises(ValueError):
        expected_takeover(*args)


def test_same_router_resuming_is_not_a_failover() -> None:
    pkts = [advert(float(i), RP1, 150) for i in range(5)] + [advert(10.0, RP1, 150)]
    assert analyze_capture(pkts, VIP).failover is None
