"""PNG timeline of a failover drill: adverts per router, gratuitous ARPs, fault, probes.

Entry point::

    render_timeline(path, capture, probes=None, names=None) -> Path

One time axis in seconds from t0 (the fault, else the first packet). Top panel: one row per
router (its adverts as dots, priority-0 adverts as black crosses) and a row of gratuitous ARPs
for the VIP; the takeover gap and any split brain are shaded. Bottom strip: probe requests,
ok or failed, with the client outage shaded. Uses matplotlib's Agg canvas (no display, no
pyplot global state), so it is safe in threads and on headless machines.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tasks.drill.probe_analysis import ProbeAnalysis
from tasks.drill.report import reference_time
from tasks.drill.vrrp_analysis import CaptureAnalysis

PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan")
FAULT_COLOUR = "crimson"


def render_timeline(
    path: str | Path,
    capture: CaptureAnalysis,
    probes: ProbeAnalysis | None = None,
    names: Mapping[str, str] | None = None,
) -> Path:
    """Draw the drill's timeline to ``path`` (PNG) and return the path."""
    t0 = reference_time(capture, probes)
    fig = Figure(figsize=(13, 6.5), dpi=110)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    colours = {r.src_ip: PALETTE[i % len(PALETTE)] for i, r in enumerate(capture.routers)}
    _draw_vrrp(top, capture, t0, colours, names or {})
    _draw_probes(bottom, probes, t0)
    for ax in (top, bottom):
        if capture.fault_time is not None:
            ax.axvline(capture.fault_time - t0, color=FAULT_COLOUR, linestyle="--", linewidth=1.5)
        ax.grid(axis="x", alpha=0.3)
    stamp = datetime.fromtimestamp(t0, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    origin = "fault" if capture.fault_time is not None else "first packet"
    bottom.set_xlabel(f"seconds since {origin} (t0 = {stamp} UTC)")
    fig.suptitle(_title(capture, probes, names or {}), fontsize=12)
    top.legend(handles=_legend(capture, probes), loc="upper left", bbox_to_anchor=(1.01, 1.0),
               fontsize=9, frameon=False)
    fig.subplots_adjust(left=0.14, right=0.82, top=0.9, bottom=0.1)
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def _draw_vrrp(
    ax: Axes, c: CaptureAnalysis, t0: float, colours: Mapping[str, str], names: Mapping[str, str]
) -> None:
    """Draw one row of adverts per router, then the row of gratuitous ARPs."""
    rows = {r.src_ip: i for i, r in enumerate(c.routers)}
    for r in c.routers:
        live = [a.time - t0 for a in c.adverts if a.src_ip == r.src_ip and a.priority > 0]
        ax.scatter(live, [rows[r.src_ip]] * len(live), s=22, color=colours[r.src_ip], zorder=3)
    zero = [a for a in c.adverts if a.priority == 0]
    ax.scatter([a.time - t0 for a in zero], [rows[a.src_ip] for a in zero], s=140, marker="X",
               color="black", zorder=4)
    garp_row = len(c.routers)
    ax.scatter([g.time - t0 for g in c.garps], [garp_row] * len(c.garps), s=60, marker="^",
               color=[colours.get(g.router or "", "grey") for g in c.garps], zorder=3)
    fo = c.failover
    if fo is not None:
        ax.axvspan(fo.old_last_time - t0, fo.new_first_time - t0, color="gold", alpha=0.3)
        ax.annotate(f" takeover {fo.takeover_s:.3f} s", xy=(fo.new_first_time - t0, garp_row + 0.5),
                    ha="left", va="center", fontsize=9,
                    bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "gold"})
    for sb in c.split_brains:
        ax.axvspan(sb.start - t0, sb.end - t0, color="red", alpha=0.12, hatch="//")
    labels = [_router_label(r.src_ip, r.priorities, r.version, r.advert_int, names)
              for r in c.routers]
    ax.set_yticks(range(garp_row + 1), labels + [f"gratuitous ARP\n{c.vip}"])
    ax.set_ylim(-0.6, garp_row + 0.8)
    ax.set_title(f"VRRP adverts, vrid {c.vrid}", fontsize=10, loc="left")


def _draw_probes(ax: Axes, p: ProbeAnalysis | None, t0: float) -> None:
    """Draw the probe strip: ok requests as green ticks, failed ones as red crosses."""
    ax.set_yticks([0], ["HTTP probes\nvia VIP"])
    ax.set_ylim(-0.6, 0.6)
    if p is None:
        ax.text(0.5, 0.5, "no probe records", transform=ax.transAxes, ha="center", va="center")
        return
    ok = [r.time - t0 for r in p.records if r.ok]
    bad = [r.time - t0 for r in p.records if not r.ok]
    ax.scatter(ok, [0] * len(ok), marker="|", s=200, color="tab:green", linewidths=2)
    ax.scatter(bad, [0] * len(bad), marker="x", s=60, color=FAULT_COLOUR, linewidths=2)
    if p.failed and p.last_ok_before is not None and p.first_ok_after is not None:
        ax.axvspan(p.last_ok_before - t0, p.first_ok_after - t0, color=FAULT_COLOUR, alpha=0.12)


def _router_label(
    ip: str, prios: tuple[int, ...], version: int, interval: float, names: Mapping[str, str]
) -> str:
    name = names.get(ip)
    head = f"{name} {ip}" if name else ip
    return f"{head}\nprio {','.join(map(str, prios))}, v{version} {interval:g} s"


def _title(c: CaptureAnalysis, p: ProbeAnalysis | None, names: Mapping[str, str]) -> str:
    fo = c.failover
    if fo is None:
        head = "VRRP: no failover seen"
    else:
        old, new = names.get(fo.old_master, fo.old_master), names.get(fo.new_master, fo.new_master)
        expected = "" if c.expected is None else f" (expected {c.expected.bound_s:.3f} s)"
        head = f"{old} \u2192 {new} ({fo.kind}): takeover {fo.takeover_s:.3f} s{expected}"
    if c.split_brains:
        head += f", SPLIT BRAIN x{len(c.split_brains)}"
    if p is not None:
        if p.failed == 0:
            head += " | client outage: none"
        elif p.outage_s is None:
            head += f" | client: {p.failed} failed requests, not recovered"
        else:
            head += f" | client outage {p.outage_s:.2f} s, {p.failed} failed requests"
    return head


def _legend(c: CaptureAnalysis, p: ProbeAnalysis | None) -> list[Line2D | Patch]:
    handles: list[Line2D | Patch] = [
        Line2D([], [], marker="o", linestyle="", color="grey", label="advert (colour = router)"),
    ]
    if c.resignations:
        handles.append(Line2D([], [], marker="X", linestyle="", color="black", markersize=10,
                              label="priority-0 advert"))
    if c.garps:
        handles.append(Line2D([], [], marker="^", linestyle="", color="grey",
                              label="gratuitous ARP"))
    if c.fault_time is not None:
        handles.append(Line2D([], [], color=FAULT_COLOUR, linestyle="--", label="fault injected"))
    if c.failover is not None:
        handles.append(Patch(color="gold", alpha=0.3, label="takeover gap"))
    if c.split_brains:
        handles.append(Patch(color="red", alpha=0.12, hatch="//", label="split brain"))
    if p is not None:
        handles += [
            Line2D([], [], marker="|", linestyle="", color="tab:green", markersize=12,
                   markeredgewidth=2, label="probe ok"),
            Line2D([], [], marker="x", linestyle="", color=FAULT_COLOUR, label="probe failed"),
            Patch(color=FAULT_COLOUR, alpha=0.12, label="client outage"),
        ]
    return handles
