"""Analysis of a saved capture (e.g. taken with Wireshark between two VMs), without a lab."""

from __future__ import annotations

from pathlib import Path

from tasks.core.inventory import vip
from tasks.core.nornir_build import build_nornir
from tasks.core.settings import ProjectError, Settings
from tasks.drill.report import format_summary
from tasks.drill.timeline_png import render_timeline
from tasks.drill.vrrp_analysis import CaptureAnalysis, CaptureFileError, analyze_capture


def analyze_saved_capture(path: Path, settings: Settings, address: str | None = None,
                          png: Path | None = None) -> tuple[CaptureAnalysis, list[str]]:
    """Analyse the capture at `path` for `address` (default: the inventory's VIP, read
    through Nornir, no connection), draw its timeline to `png`; the analysis and its
    summary lines. ProjectError (exit 2) if the file is not a capture."""
    if address is None:
        address = vip(build_nornir(settings, check_lab=False).inventory)
    if address is None:
        raise ProjectError(f"{settings.hosts_file}: no proxy tier, so no VIP: give --vip", 2)
    try:
        capture = analyze_capture(path, address)
    except CaptureFileError as exc:
        raise ProjectError(str(exc), 2) from None
    lines = format_summary(capture)
    if png is not None:
        lines.append(f"timeline: {render_timeline(png, capture)}")
    if capture.failover is None:
        lines.append("no takeover found in this capture")
    return capture, lines


def capture_exit_code(capture: CaptureAnalysis) -> int:
    """0 when the capture shows a takeover and no split brain, else 1."""
    return 0 if capture.failover is not None and not capture.split_brains else 1
