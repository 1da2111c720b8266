"""Deploy timings on the local lab: `python benchmarks/deploy_bench.py [--sizes 3 20 50]`.

For each web tier size: a fresh lab (write_inventory + Lab.up), then the deploy runbook as a
subprocess: first deploy, immediate no-op re-run, and a one-file change (nginx's
lb_max_fails on the proxies). Prints wall time (process included) and per-phase maxima
over the hosts, from the runbook's --json. Takes the test lock: it rebuilds the lab.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tasks.core.settings import REPO_ROOT, load_settings
from tp5lab import paths
from tp5lab.control import Lab
from tp5lab.inventory_factory import write_inventory


def deploy(config: Path, out: Path) -> tuple[float, dict]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "runbooks/deploy.py", "--config", str(config),
                           "--json", str(out)], cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    summary = json.loads(out.read_text()) if out.exists() else {}
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-2000:])
    return wall, summary


def phases(summary: dict) -> str:
    """Max over hosts of each phase, then the runbook's own checks."""
    worst: dict[str, float] = {}
    for host in summary.get("hosts", {}).values():
        for phase, seconds in host["timings"].items():
            worst[phase] = max(worst.get(phase, 0.0), seconds)
    parts = [f"{k} {v:.2f}" for k, v in sorted(worst.items(), key=lambda kv: -kv[1])[:8]]
    parts.append(f"hosts {summary.get('deploy_seconds', 0):.2f}")
    parts.append(f"db check {summary.get('database', {}).get('seconds', 0):.2f}")
    parts.append(f"vip {summary.get('vip', {}).get('waited', 0):.2f}")
    parts.append(f"rr {summary.get('round_robin', {}).get('seconds', 0):.2f}")
    return ", ".join(parts)


def bench(webs: int, folder: Path) -> None:
    config = write_inventory(folder / f"w{webs}", webs)
    lab = Lab(load_settings(config))
    lab.down()
    up = time.monotonic()
    lab.up()
    print(f"== {webs} web + 2 rp + 2 db ({webs + 4} nodes): lab up {time.monotonic() - up:.1f} s")
    out = folder / f"w{webs}.json"
    runs = [("first deploy", config), ("no-op re-run", config)]
    changed = write_inventory(folder / f"w{webs}-change", webs, {"rp": {"lb_max_fails": 2}})
    runs.append(("one-file change", changed))
    for label, cfg in runs:
        wall, summary = deploy(cfg, out)
        counts: dict[str, int] = {}
        for host in summary.get("hosts", {}).values():
            counts[host["status"]] = counts.get(host["status"], 0) + 1
        print(f"  {label:<16} {wall:5.2f} s wall  {counts}  ok={not summary.get('failed')}")
        print(f"    phases (max over hosts, s): {phases(summary)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 20, 50])
    args = parser.parse_args()
    with paths.lab_lock(), tempfile.TemporaryDirectory() as tmp:
        try:
            for webs in args.sizes:
                bench(webs, Path(tmp))
        finally:
            base = Lab(load_settings())
            base.down()
            base.up()
    return 0


if __name__ == "__main__":
    sys.exit(main())
