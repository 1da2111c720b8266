"""Database failover benchmark: `.venv/bin/python benchmarks/db_failover_bench.py --fault crash`.

Runs the db drill (tasks/drill/db_experiment) `repeat` times on the deployed lab, every run
whatever the previous one gave, then prints the total of lost, phantom and split-brain
writes over all runs and the write outage p50 / p95 / max (with its parts), side by side with
the defaults of the tools people use. `--json FILE` keeps the per-run figures; `--combine
FILE...` prints the table over runs saved in several chunks (the lab is shared: run the
benchmark in chunks, each inside the lab lock, see the README). Needs the local lab, up and
deployed; exit 1 when any run lost, invented or split a write.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tasks.core.arguments import count, input_file, output_path
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.db.roles import root_command
from tasks.db.sql import DbError
from tasks.drill.db_context import build_db_context
from tasks.drill.db_experiment import run_db_experiment
from tasks.drill.db_faults import DB_FAULTS, db_fault_named
from tasks.drill.db_history import spread
from tp5lab.control import Lab

ANCHORS = [("MaxScale mariadbmon (2 s x 5 checks)", "about 10 s, up to 25 s", "none alone"),
           ("orchestrator", "10-13 s reported", "none"),
           ("MHA (3 s x 3)", "10-30 s claimed", "best effort")]
LOG_TAIL = "tail -n 25 /var/lib/mysql/*.err /var/log/mysql/error.log 2>/dev/null; true"
PARTS = ("detection_s", "confirmation_s", "promotion_s", "replica_wait_s", "discovery_s")


def one_run(ctx: Any, fault: Any, number: int) -> dict[str, Any]:
    exp = run_db_experiment(ctx, fault)
    data = exp.to_dict()
    row = {k: data[k] for k in ("ok", "problems", "lost", "phantom", "split_brain",
                                "info_committed", "write_outage", "counts", "target")}
    outage = data["write_outage"] or {}
    print(f"run {number}: {exp.fault} on {exp.target}: lost {data['lost']}, phantom "
          f"{data['phantom']}, split-brain {data['split_brain']}, outage "
          f"{outage.get('seconds', float('nan')):.2f} s"
          + ("" if exp.ok else f"  PROBLEMS: {'; '.join(exp.problems)}"), flush=True)
    if not exp.ok:
        print_error_logs(ctx)
    return row


def print_error_logs(ctx: Any) -> None:
    """The tail of each db node's MariaDB error log, to see why a run failed."""
    for name in ctx.tier.names:
        try:
            out = ctx.tier.on(name, root_command, command=LOG_TAIL)
        except DbError as exc:
            out = f"(cannot read: {exc})"
        print(f"--- {name} error log ---\n{out}", flush=True)


def table(fault: str, rows: list[dict[str, Any]]) -> list[str]:
    total = {k: sum(int(r[k] or 0) for r in rows) for k in ("lost", "phantom", "split_brain",
                                                            "info_committed")}
    outages = [r["write_outage"]["seconds"] for r in rows if r.get("write_outage")]
    s = spread(outages)
    lines = [f"db failover benchmark, fault {fault}: {len(rows)} runs, "
             f"{sum(not r['ok'] for r in rows)} with problems",
             f"  lost {total['lost']}, phantom {total['phantom']}, split-brain "
             f"{total['split_brain']}, info-committed {total['info_committed']} (all runs)"]
    if s:
        lines.append(f"  write outage p50 {s['median']:.2f} s, p95 {s['p95']:.2f} s, max "
                     f"{s['max']:.2f} s (min {s['min']:.2f} s)")
    for part in PARTS:
        values = [r["write_outage"][part] for r in rows
                  if r.get("write_outage") and r["write_outage"].get(part) is not None]
        p = spread(values)
        if p:
            lines.append(f"    {part[:-2]:<13} p50 {p['median']:.2f} s, p95 {p['p95']:.2f} s, "
                         f"max {p['max']:.2f} s")
    lines.append(f"  {'tool':<38} {'outage':<24} lost-write guarantee")
    mine = f"p95 {s['p95']:.2f} s" if s else "-"
    lines.append(f"  {'this framework (measured)':<38} {mine:<24} "
                 f"none lost: {total['lost']} over {len(rows)} runs")
    lines += [f"  {name:<38} {outage:<24} {promise}" for name, outage, promise in ANCHORS]
    return lines


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None)
    p.add_argument("--fault", choices=tuple(DB_FAULTS), default="crash")
    p.add_argument("--repeat", type=count(1, 100), default=30)
    p.add_argument("--json", type=output_path, help="save the per-run figures here")
    p.add_argument("--combine", type=input_file, nargs="+", metavar="FILE",
                   help="only print the table over runs saved with --json")
    args = p.parse_args(argv)
    if args.combine:
        rows = [r for f in args.combine for r in json.loads(Path(f).read_text())["runs"]]
        print("\n".join(table(args.fault, rows)))
        return 0
    settings = load_settings(args.config)
    try:
        ctx = build_db_context(settings, Lab(settings) if settings.is_lab else None,
                               progress=lambda _m: None)
    except ProjectError as exc:
        fail(exc)
    fault = db_fault_named(args.fault)
    rows: list[dict[str, Any]] = []
    try:
        for number in range(1, args.repeat + 1):
            rows.append(one_run(ctx, fault, number))
            if len(rows) >= 2 and not (rows[-1]["ok"] or rows[-2]["ok"]):
                print("two runs in a row with problems: stopping", file=sys.stderr)
                break
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        ctx.tier.nr.close_connections()
        if args.json:
            args.json.write_text(json.dumps({"fault": args.fault, "runs": rows}, indent=1))
    print("\n".join(table(args.fault, rows)))
    bad = any(r["lost"] or r["phantom"] or r["split_brain"] for r in rows)
    return 1 if bad or not rows else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
