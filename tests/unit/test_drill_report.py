"""Text summary and PNG timeline of a failover drill, from synthetic packets."""

from __future__ import annotations

from pathlib import Path

from matplotlib.image import imread
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRP
from scapy.packet import Packet

from tasks.drill.probe_analysis import ProbeAnalysis, ProbeRecord, analyze_probes
from tasks.drill.report import format_summary
from tasks.drill.timeline_png import render_timeline
from tasks.drill.vrrp_analysis import CaptureAnalysis, analyze_capture

BASE = 1_700_000_000.0
VIP = "10.5.1.110"
NAMES = {"10.5.1.111": "rp1", "10.5.1.112": "rp2"}


def advert(t: float, src: str, prio: int) -> Packet:
    pkt = Ether() / IP(src=src, dst="224.0.0.18", proto=112, ttl=255)
    pkt = pkt / VRRP(vrid=51, priority=prio, adv=1, addrlist=[VIP])
    pkt.time = BASE + t
    return pkt


def drill() -> tuple[CaptureAnalysis, ProbeAnalysis]:
    """rp1 crashes at 9.5 s; rp2 takes over at 12.609375 s; probes fail 10..12 s."""
    pkts = [advert(float(i), "10.5.1.111", 150) for i in range(10)]
    pkts += [advert(12.609375 + i, "10.5.1.112", 100) for i in range(5)]
    arp = Ether() / ARP(op=1, psrc=VIP, pdst=VIP)
    arp.time = BASE + 12.61
    capture = analyze_capture(pkts + [arp], VIP, fault_time=BASE + 9.5)
    records = [
        ProbeRecord(BASE + t / 2, ok=not 20 <= t <= 24, latency_s=0.01,
                    server=None if 20 <= t <= 24 else f"web{t % 3 + 1}",
                    error="timeout" if 20 <= t <= 24 else None)
        for t in range(34)
    ]
    return capture, analyze_probes(records, BASE + 9.5)


def test_summary_compares_measured_and_expected() -> None:
    text = "\n".join(format_summary(*drill(), names=NAMES))
    assert "Failover (crash): rp1 (10.5.1.111) -> rp2 (10.5.1.112)" in text
    assert "takeover measured           3.609 s" in text
    assert "takeover expected           3.609 s = 3 x 1 s + skew 0.609 s" in text
    assert "measured - expected         +0.000 s" in text
    assert "fault to new master         3.109 s" in text
    assert "outage: 5 failed requests t+0.500s..t+2.500s (span 2.000 s)" in text
    assert "outage 3.000 s" in text
    assert "Split brain: none" in text


def test_summary_without_failover_or_probes() -> None:
    capture = analyze_capture([advert(float(i), "10.5.1.111", 150) for i in range(3)], VIP)
    lines = format_summary(capture)
    assert lines[-1] == "Failover: none seen (no new master took over)"
    assert not any(line.startswith("Client probes") for line in lines)


def test_timeline_png_is_written(tmp_path: Path) -> None:
    capture, probes = drill()
    out = render_timeline(tmp_path / "timeline.png", capture, probes, NAMES)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = imread(out).shape[:2]
    assert width > 1000 and height > 500


def test_timeline_png_without_probes_or_failover(tmp_path: Path) -> None:
    capture = analyze_capture([advert(0.0, "10.5.1.111", 150)], VIP)
    out = render_timeline(tmp_path / "empty.png", capture)
    assert out.stat().st_size > 0
