"""Database tier state: `python runbooks/db_status.py [--verify] [--host H]... [--config C]`.

Prints who is primary, each node's GTID positions, replication threads, lag and last error.
`--verify` also writes a marker on the primary, times its arrival on each replica and checks
that the replica refuses a write. Exit 0 only when the tier is healthy (and verified).
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import sys

from rich.console import Console

from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.db.sql import DbTarget
from tasks.db.verify import cluster_from_results, db_status, print_cluster, verify_db

console = Console(highlight=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    parser.add_argument("--host", action="append", default=[], help="only this db host")
    parser.add_argument("--verify", action="store_true",
                        help="also check a marker row's replication and the write refusal")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
        every = build_nornir(settings, check_lab=False)  # a replica's check needs its primary
        nr = select_hosts(every, ["db"], args.host)
        ensure_reachable(nr, settings)
    except ProjectError as exc:
        fail(exc)
    target = DbTarget.from_settings(settings)
    cluster = cluster_from_results(nr.run(task=db_status, target=target))
    print_cluster(cluster, console)
    ok = cluster.ok
    if args.verify:
        verified = nr.run(task=verify_db, target=target, inventory=every.inventory)
        for name, multi in sorted(verified.items()):
            if multi.failed:
                console.print(f"[red]verify {name} failed[/red]: {multi[0].exception}")
                continue
            data = multi[0].result
            if data["role"] == "replica":
                console.print(f"verify {name}: marker from the primary read after "
                              f"{data['marker_delay_s'] * 1000:.1f} ms; write refused: "
                              f"{data['write_refused']}")
            else:
                console.print(f"verify {name}: primary writable, binlog at "
                              f"{data['gtid_binlog_pos']}")
        ok = ok and not verified.failed
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
