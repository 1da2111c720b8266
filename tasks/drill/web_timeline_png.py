"""PNG timeline of a web drill: client latency per request, NGINX's tries on the target.

Entry point::

    render_web_timeline(path, exp, target) -> Path

One time axis in seconds from the fault. Top: each probe's latency (colour = the web server
that answered; failed probes as red crosses at the probe timeout), the latency bound dashed.
Bottom strip: the tries NGINX sent to the target (from the proxies' logs), answered or
failed. Vertical lines: fault, restore done, NGINX stopped sending and sent again. Uses
matplotlib's Agg canvas (no display, no pyplot global state).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tasks.drill.timeline_png import FAULT_COLOUR, PALETTE
from tasks.drill.web_record import WebExperiment


def render_web_timeline(path: str | Path, exp: WebExperiment, target: str) -> Path:
    """Draw the experiment's timeline to `path` (PNG) and return the path."""
    t0 = exp.fault_time
    fig = Figure(figsize=(13, 6), dpi=110)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True,
                               gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    _draw_latency(top, exp, t0)
    _draw_tries(bottom, exp, t0, target)
    for ax in (top, bottom):
        _markers(ax, exp, t0)
        ax.grid(axis="x", alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    bottom.set_xlabel("seconds since the fault")
    during = exp.phases.get("during")
    failed = sum(p.failed for p in exp.phases.values())
    slowest = "-" if during is None or during.max_s is None else f"{during.max_s:.2f} s"
    fig.suptitle(f"{exp.fault} on {target}: {failed} failed requests, slowest during the fault "
                 f"{slowest} (bound {exp.nginx.latency_bound_s:g} s)", fontsize=12)
    fig.subplots_adjust(left=0.1, right=0.8, top=0.9, bottom=0.1)
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def _draw_latency(ax: Axes, exp: WebExperiment, t0: float) -> None:
    servers = sorted({r.server for r in exp.records if r.ok and r.server})
    for i, server in enumerate(servers):
        mine = [r for r in exp.records if r.ok and r.server == server]
        ax.scatter([r.time - t0 for r in mine], [r.latency_s for r in mine], s=6, alpha=0.6,
                   color=PALETTE[i % len(PALETTE)], label=server.split(".")[0])
    bad = [r.time - t0 for r in exp.records if not r.ok]
    ax.scatter(bad, [exp.probe_timeout_s] * len(bad), marker="x", color=FAULT_COLOUR,
               label="failed request")
    ax.axhline(exp.nginx.latency_bound_s, color="grey", linestyle="--", linewidth=1,
               label=f"bound {exp.nginx.latency_bound_s:g} s")
    ax.set_ylabel("latency (s)")
    ax.set_title("client requests through the VIP", fontsize=10, loc="left")


def _draw_tries(ax: Axes, exp: WebExperiment, t0: float, target: str) -> None:
    ax.set_yticks([0], [f"NGINX tries\non {target}"])
    ax.set_ylim(-0.6, 0.6)
    if exp.view is None:
        ax.text(0.5, 0.5, "proxies' logs not read", transform=ax.transAxes, ha="center")
        return
    ok = [t.sent - t0 for t in exp.view.tries if t.ok]
    bad = [t.sent - t0 for t in exp.view.tries if not t.ok]
    ax.scatter(ok, [0] * len(ok), marker="|", s=200, color="tab:green", linewidths=1.5)
    ax.scatter(bad, [0] * len(bad), marker="x", s=50, color=FAULT_COLOUR, linewidths=1.5)


def _markers(ax: Axes, exp: WebExperiment, t0: float) -> None:
    marks = [(exp.fault_time, FAULT_COLOUR, "--", "fault"),
             (exp.restored_time, "tab:green", "--", "restored")]
    if exp.view is not None:
        marks += [(exp.view.stopped, "black", ":", "NGINX stopped sending"),
                  (exp.view.resumed, "tab:blue", ":", "NGINX sent again")]
    for when, colour, style, label in marks:
        if when is not None:
            ax.axvline(when - t0, color=colour, linestyle=style, linewidth=1.3, label=label)
