"""Database tier state: `python runbooks/db_status.py [--verify] [--host H]... [--config C]`.

Prints the ACTUAL primary (the one writable node, whatever the inventory's initial db_role),
each node's GTID positions (gtid_binlog_pos, gtid_slave_pos, gtid_current_pos), replication
threads, lag, semi-sync state (status, clients, commits without an ack), divergence, and a
DEGRADED tier (runbooks/db_failover.py degrade) loudly, and whether each replica is promotable
by `db_failover.py failover` (a healthy tier is recorded as in sync: tasks/db/insync.py).
`--verify` also writes a marker on the primary, times its arrival on each replica and checks
that the replica refuses a write.
Exit 0 only when the tier is healthy (and verified); 2 for a --host that is not a db host.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import sys

from nornir.core import Nornir
from rich.console import Console

from tasks.core.inventory import tier_hosts
from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.db.degraded import degraded_mark
from tasks.db.insync import last_in_sync, promotability, record_in_sync
from tasks.db.sql import DbTarget
from tasks.db.status import ClusterStatus
from tasks.db.verify import cluster_from_results, db_status, print_cluster, verify_db

console = Console(highlight=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    parser.add_argument("--host", action="append", default=[], help="only this db host")
    parser.add_argument("--verify", action="store_true",
                        help="also check a marker row's replication and the write refusal")
    return parser.parse_args(argv)


def check_db_hosts(nr: Nornir, names: list[str]) -> None:
    """ProjectError (exit 2) for a --host that is not a db host of the inventory."""
    db = [h.name for h in tier_hosts(nr.inventory, "db")]
    wrong = [n for n in names if n in nr.inventory.hosts and n not in db]
    if wrong:
        raise ProjectError(f"{nr.config.inventory.options['host_file']}: "
                           f"{', '.join(wrong)} not a db host (db hosts: {', '.join(db)})", 2)


def print_promotable(cluster: ClusterStatus, mark: dict | None, whole_tier: bool) -> None:
    """Record a healthy tier (every node asked) as in sync, then say for each replica
    whether failover would promote it, and why not."""
    if whole_tier and mark is None and record_in_sync(cluster):
        console.print("in sync: recorded (each node's boot time and GTID position)")
    for name, why in promotability(cluster, last_in_sync(), mark):
        if why:
            console.print(f"[bold red]{name}: NOT PROMOTABLE[/bold red]: {why}")
        else:
            console.print(f"{name}: promotable (in sync when last seen, not restarted since)")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
        every = build_nornir(settings, check_lab=False)  # a replica's check needs its primary
        check_db_hosts(every, args.host)
        nr = select_hosts(every, ["db"], args.host)
        ensure_reachable(nr, settings)
    except ProjectError as exc:
        fail(exc)
    target = DbTarget.from_settings(settings)
    cluster = cluster_from_results(nr.run(task=db_status, target=target))
    print_cluster(cluster, console)
    ok = cluster.ok
    mark = degraded_mark()
    if mark is not None:
        console.print(f"[bold red]DEGRADED[/bold red] since {mark['since']} (primary "
                      f"{mark['primary']} at {mark['position']}): writes are acknowledged "
                      "without a replica copy and no replica is promotable until one has "
                      "caught up (runbooks/db_failover.py rejoin <node>)")
        ok = False
    print_promotable(cluster, mark, whole_tier=not args.host)
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
