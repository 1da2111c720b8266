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
import signal
import sys
import threading

from tasks.core.arguments import count, seconds
from tasks.core.inventory import tier_hosts
from tasks.core.nornir_build import build_nornir
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.db.failover import degrade, failover, rejoin, switchover
from tasks.db.rebuild import rebuild
from tasks.db.sql import DbError, DbTarget
from tasks.db.tier import Refused, Steps, Tier
from tasks.db.watch import WatchSettings, watch

PROBE_TIMEOUT = WatchSettings.probe_timeout  # also the watcher's connect timeout
STATUS_TIMEOUT = 2.0  # the watcher reads a node's status: a frozen node must not hold it


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


def _named(args: argparse.Namespace) -> str | None:
    return getattr(args, "to", None) or getattr(args, "node", None)


def build_tier(args: argparse.Namespace) -> Tier:
    """The db tier's Nornir and SQL target; ProjectError (exit 2) for a name that is not a
    db host of the inventory."""
    settings = load_settings(args.config)
    everyone = build_nornir(settings, check_lab=False)
    db = [h.name for h in tier_hosts(everyone.inventory, "db")]
    name = _named(args)
    if name is not None and name not in db:
        where = everyone.config.inventory.options["host_file"]
        raise ProjectError(f"{where}: {name} is not a db host of the inventory "
                           f"(db hosts: {', '.join(db)})", 2)
    nr = build_nornir(settings, groups=["db"])  # checks the lab route before connecting
    if args.command == "watch":
        return Tier(nr, DbTarget.from_settings(settings), connect_timeout=PROBE_TIMEOUT,
                    status_timeout=STATUS_TIMEOUT)
    return Tier(nr, DbTarget.from_settings(settings))


def run_watch(tier: Tier, args: argparse.Namespace, steps: Steps) -> int:
    """The watcher until its bounds, Ctrl-C or SIGTERM (a failover under way finishes)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _s, _f: stop.set())
    settings = WatchSettings(args.interval, PROBE_TIMEOUT, args.misses, args.silence,
                             degrade=not args.wait_for_replica)
    watcher = watch(tier, settings, steps, stop, args.duration, args.max_failovers)
    if watcher is None or stop.is_set():
        steps.say("watch: stopped (signal)")
        return 130 if watcher is None else 0
    steps.say(f"watch: done ({watcher.failovers} failover(s))")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        tier = build_tier(args)
    except ProjectError as exc:
        fail(exc)
    steps = Steps()
    try:
        if args.command == "switchover":
            switchover(tier, args.to, steps)
        elif args.command == "failover":
            failover(tier, args.to, steps, degrade=args.degrade)
        elif args.command == "rejoin":
            rejoin(tier, args.node, steps)
        elif args.command == "rebuild":
            rebuild(tier, args.node, steps)
        elif args.command == "watch":
            return run_watch(tier, args, steps)
        else:
            degrade(tier, steps)
    except Refused as exc:
        steps.say(f"REFUSED: {exc}")
        return 1
    except DbError as exc:
        steps.say(f"FAILED: {exc} (safe to run again once the cause is fixed; see "
                  "runbooks/db_status.py)")
        return 1
    finally:
        tier.nr.close_connections()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
