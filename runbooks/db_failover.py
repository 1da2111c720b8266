"""Change the database primary without losing an acknowledged write.

  python runbooks/db_failover.py switchover --to db2   planned: fence, catch up, swap roles
  python runbooks/db_failover.py failover [--to db2]   the primary is dead: promote a replica
  python runbooks/db_failover.py rejoin db1            a returned node replicates again
  python runbooks/db_failover.py rebuild db1           re-clone a diverged node (mariadb-backup)
  python runbooks/db_failover.py degrade               accept writes without a replica (recorded)
  python runbooks/db_failover.py watch [--duration S]  fail over by itself once the primary is
                                                       dead (confirmed through the replica)

Each step is printed with its time. Exit 0: done; 1: refused or failed (the message says what
to run next; nothing more was changed); 2: bad arguments; 3: the lab is not up.
"""

from __future__ import annotations

import _venv  # noqa: F401  (first: continue inside the project's .venv)

import argparse
import sys

from tasks.core.arguments import count, seconds
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.db.commands import PROBE_TIMEOUT, command_tier, run_operation, run_watch
from tasks.db.tier import Steps
from tasks.db.watch import WatchSettings


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="Nornir config.yaml (default: repo's)")
    sub = parser.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("switchover", help="planned change of primary")
    sw.add_argument("--to", required=True, help="the replica to promote")
    fo = sub.add_parser("failover", help="promote a replica of a dead primary")
    fo.add_argument("--to", default=None, help="the replica to promote (default: the only one)")
    fo.add_argument("--degrade", action="store_true",
                    help="open it degraded: writes without a replica copy (recorded) until "
                         "the old primary rejoins (default: its writes wait for a replica)")
    rj = sub.add_parser("rejoin", help="make a returned node a replica of the primary")
    rj.add_argument("node")
    rb = sub.add_parser("rebuild", help="re-clone a replica from the primary (mariadb-backup)")
    rb.add_argument("node")
    sub.add_parser("degrade", help="the primary stops waiting for a replica (recorded)")
    wa = sub.add_parser("watch", help="probe the primary; fail over once it is confirmed dead")
    wa.add_argument("--duration", type=seconds(1, 86400), default=3600.0,
                    help="stop after this many seconds (1..86400, default 3600)")
    wa.add_argument("--max-failovers", type=count(1, 100), default=1,
                    help="stop after this many failovers (default 1)")
    wa.add_argument("--interval", type=seconds(0.05, 5), default=WatchSettings.interval,
                    help=f"between probes of the primary (default {WatchSettings.interval} s)")
    wa.add_argument("--misses", type=count(1, 50), default=WatchSettings.misses,
                    help=f"unanswered probes in a row to suspect it "
                         f"(default {WatchSettings.misses})")
    wa.add_argument("--silence", type=seconds(1.5, 60), default=WatchSettings.silence,
                    help="the replica heard nothing this long: it lost the primary too "
                         f"(default {WatchSettings.silence} s; the heartbeat is 1 s)")
    wa.add_argument("--wait-for-replica", action="store_true",
                    help="promote with semi-sync on: no write succeeds until the old primary "
                         "rejoins (default: degraded, writes go on without a copy, recorded)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    name = getattr(args, "to", None) or getattr(args, "node", None)
    try:
        tier = command_tier(load_settings(args.config), name, args.command == "watch")
    except ProjectError as exc:
        fail(exc)
    if args.command == "watch":
        settings = WatchSettings(args.interval, PROBE_TIMEOUT, args.misses, args.silence,
                                 degrade=not args.wait_for_replica)
        return run_watch(tier, settings, Steps(), args.duration, args.max_failovers)
    return run_operation(tier, args.command, name, Steps(), getattr(args, "degrade", False))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
