"""PNG timeline of a db drill: each writer's operations on one time axis from the fault (ok
coloured by the node that took the write, fail and info marked), the write outage shaded,
the watcher's and the drill's steps as vertical lines. Agg canvas only."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tasks.drill.db_record import DbExperiment
from tasks.drill.timeline_png import FAULT_COLOUR, PALETTE

STYLE = {"ok": ("tab:green", "|"), "fail": (FAULT_COLOUR, "x"), "info": ("tab:orange", "^")}
MARKS = (("fault", FAULT_COLOUR, "--"), ("suspected", "tab:purple", ":"),
         ("confirmed", "tab:brown", ":"), ("promoted", "tab:blue", "--"),
         ("rejoined", "tab:green", "--"))


def render_db_timeline(path: str | Path, exp: DbExperiment) -> Path:
    t0 = exp.marks.fault or (exp.ops[0].start if exp.ops else 0.0)
    fig = Figure(figsize=(13, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    writers = sorted({o.writer for o in exp.ops})
    for i, node in enumerate(sorted({o.node for o in exp.ops if o.outcome == "ok"})):
        mine = [o for o in exp.ops if o.outcome == "ok" and o.node == node]
        ax.scatter([o.end - t0 for o in mine], [o.writer for o in mine], s=40, marker="|",
                   color=PALETTE[i % len(PALETTE)], label=f"ok on {node} ({len(mine)})")
    for outcome, (colour, marker) in STYLE.items():
        mine = [o for o in exp.ops if o.outcome == outcome and outcome != "ok"]
        if mine:
            ax.scatter([o.end - t0 for o in mine], [o.writer for o in mine], s=30,
                       marker=marker, color=colour, label=f"{outcome} ({len(mine)})")
    out = exp.history.outage if exp.history else None
    if out is not None:
        ax.axvspan(out.since - t0, out.until - t0, color="grey", alpha=0.15,
                   label=f"write outage {out.seconds:.2f} s")
    for name, colour, style in MARKS:
        when = getattr(exp.marks, name)
        if when is not None:
            ax.axvline(when - t0, color=colour, linestyle=style, linewidth=1.3, label=name)
    ax.set_yticks(writers, [f"writer {w}" for w in writers])
    ax.set_xlabel("seconds since the fault (operation end)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    h = exp.history
    title = f"{exp.fault} on {exp.target}"
    if h is not None:
        outage = h.outage.seconds if h.outage else 0.0
        title += (f": lost {len(h.lost)}, split-brain {len(h.split_brain)}, write outage "
                  f"{outage:.2f} s")
    fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.08, right=0.82, top=0.9, bottom=0.12)
    out = Path(path)
    fig.savefig(out, format="png")
    return out
