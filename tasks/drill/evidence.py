"""Where a drill keeps its evidence: the capture (pcap) and the timeline (PNG) of each run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.drill.record import Experiment
from tasks.drill.timeline_png import render_timeline

DEFAULT_FOLDER = Path("out")


@dataclass(frozen=True)
class EvidencePaths:
    """The paths asked for (None: out/drill-<fault>.pcap / .png), suffixed -N per run."""

    pcap: Path | None = None
    png: Path | None = None
    folder: Path = DEFAULT_FOLDER

    def for_run(self, fault: str, number: int, repeat: int) -> tuple[Path, Path]:
        suffix = f"-{number}" if repeat > 1 else ""
        return (self._path(self.pcap, f"drill-{fault}", ".pcap", suffix),
                self._path(self.png, f"drill-{fault}", ".png", suffix))

    def _path(self, path: Path | None, stem: str, ext: str, suffix: str) -> Path:
        if path is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            return self.folder / f"{stem}{suffix}{ext}"
        return path.with_name(path.stem + suffix + path.suffix) if suffix else path


def save_evidence(exp: Experiment, pcap: Path, png: Path, names: Mapping[str, str]) -> None:
    """Write the experiment's packets and its timeline picture (it needs its capture)."""
    from scapy.utils import wrpcap

    if exp.capture is None:
        raise ValueError("an experiment without a capture has no evidence to save")
    wrpcap(str(pcap), exp.packets)
    exp.pcap = pcap
    exp.png = render_timeline(png, exp.capture, exp.probes, names)
