"""Deploy times of this checkout against another one, side by side in one run.

    python benchmarks/deploy_compare.py --other /path/to/other/checkout [--rounds 3]

Each round rebuilds the lab from nothing (this checkout's lab code, the repository's
inventory) before each checkout's turn, then times that checkout's own deploy runbook (its own
.venv): the first deploy, then an immediate no-op re-run. The two checkouts alternate (and
swap who goes first each round), so the machine's noise falls on both. Prints each run, then
the medians and the ratio this/other. Holds the lab lock for the whole run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tasks.core.settings import REPO_ROOT, load_settings
from tp5lab import paths
from tp5lab.control import Lab

PHASES = ("first deploy", "no-op re-run")


def timed_deploy(checkout: Path) -> tuple[float, int]:
    """Wall time and exit code of one `runbooks/deploy.py` run of `checkout`."""
    env = dict(os.environ, TP5_LAB_LOCK_HELD="1")
    started = time.monotonic()
    proc = subprocess.run([str(checkout / ".venv/bin/python"), "runbooks/deploy.py"],
                          cwd=checkout, capture_output=True, text=True, env=env, timeout=300)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        print(f"  {checkout}: deploy exited {proc.returncode}\n{proc.stdout[-2000:]}"
              f"{proc.stderr[-1000:]}")
    return wall, proc.returncode


def one_turn(checkout: Path) -> list[float]:
    lab = Lab(load_settings())
    lab.down()
    lab.up()
    times = []
    for phase in PHASES:
        wall, rc = timed_deploy(checkout)
        times.append(wall)
        print(f"  {checkout.name:<12} {phase:<13} {wall:6.2f} s  exit {rc}", flush=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1..10")
    args = parser.parse_args()
    other = args.other.resolve()
    if not (other / ".venv/bin/python").exists() or not (other / "runbooks/deploy.py").exists():
        print(f"error: {other}: not a set-up checkout (no .venv or runbooks/deploy.py)",
              file=sys.stderr)
        return 2
    this = REPO_ROOT
    results: dict[Path, list[list[float]]] = {this: [], other: []}
    with paths.lab_lock():
        try:
            for rnd in range(args.rounds):
                order = (other, this) if rnd % 2 == 0 else (this, other)
                print(f"round {rnd + 1}/{args.rounds}")
                for checkout in order:
                    results[checkout].append(one_turn(checkout))
        finally:
            Lab(load_settings()).down()
    print(f"\nmedians over {args.rounds} round(s), this = {this}, other = {other}")
    for i, phase in enumerate(PHASES):
        mine = statistics.median(r[i] for r in results[this])
        theirs = statistics.median(r[i] for r in results[other])
        print(f"  {phase:<13} this {mine:6.2f} s   other {theirs:6.2f} s   "
              f"ratio this/other {mine / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
