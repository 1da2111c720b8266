"""First deploys of the db tier on fresh labs, again and again: how many exit 0.

    python benchmarks/fresh_db_deploys.py [--runs 8] [--checkout /path/to/other/checkout]

Each run rebuilds the lab from nothing (lab down, lab up: this checkout's lab code), then
times `runbooks/deploy.py --group db` (the two db nodes make their admin accounts, find the
primary, replicate, are checked) of this checkout, or of `--checkout` with its own .venv
(as benchmarks/deploy_compare.py). Prints each run (exit code, seconds, and the output's
end when it failed), then how many of the runs exited 0. Holds the lab lock throughout and
leaves the lab down.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from tasks.core.settings import REPO_ROOT, load_settings
from tp5lab import paths
from tp5lab.control import Lab


def fresh_deploy(checkout: Path) -> tuple[int, float, str]:
    """Exit code, wall time and output of one `deploy.py --group db` of `checkout` on a new
    lab."""
    lab = Lab(load_settings())
    lab.down()
    lab.up()
    env = dict(os.environ, TP5_LAB_LOCK_HELD="1")
    started = time.monotonic()
    proc = subprocess.run([str(checkout / ".venv/bin/python"), "runbooks/deploy.py", "--group",
                           "db"], cwd=checkout, capture_output=True, text=True, env=env,
                          timeout=300)
    return proc.returncode, time.monotonic() - started, proc.stdout + proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, choices=range(1, 51), metavar="1..50")
    parser.add_argument("--checkout", type=Path, default=REPO_ROOT,
                        help="the checkout whose deploy runs (default: this one)")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    if not (checkout / ".venv/bin/python").exists():
        print(f"error: {checkout}: not a set-up checkout (no .venv)", file=sys.stderr)
        return 2
    ok = 0
    with paths.lab_lock():
        try:
            for number in range(1, args.runs + 1):
                code, wall, output = fresh_deploy(checkout)
                ok += code == 0
                print(f"run {number}/{args.runs}: exit {code}  {wall:5.2f} s", flush=True)
                if code != 0:
                    print(output[-3000:], flush=True)
        finally:
            Lab(load_settings()).down()
    print(f"{ok} of {args.runs} fresh `deploy.py --group db` runs of {checkout} exited 0")
    return 0 if ok == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
