"""Replication lag under load: `python benchmarks/replication_lag.py [--rate 200] [--seconds 10]`.

From the controller, one thread writes `rate` small rows a second for `seconds` to the
primary (autocommit; each row carries its commit time, the primary's NOW(6)); a second
thread polls the replica and notes when each row becomes visible. Prints p50/p99/max of the
delay from commit on the primary to visibility on the replica, and the row counts on both
sides (must be equal). Bounded: at most rate x seconds rows, then `--drain` seconds to wait.
The lab-route check runs before any connection. Needs a deployed db tier.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid

from nornir.core.inventory import Host
from pymysql.connections import Connection

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import ProjectError, fail, load_settings
from tasks.db.deploy import database_name, primary_of, replicas_of
from tasks.db.sql import DbError, DbTarget, connect_admin, query, scalar

MAX_ROWS = 20_000


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--rate", type=int, default=200, help="writes per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the load")
    parser.add_argument("--drain", type=float, default=10.0,
                        help="seconds to wait for the replica after the last write")
    parser.add_argument("--keep", action="store_true", help="keep the rows afterwards")
    args = parser.parse_args(argv)
    total = int(args.rate * args.seconds)
    if not 0 < total <= MAX_ROWS:
        parser.error(f"rate x seconds must be 1..{MAX_ROWS}")
    try:
        nr = build_nornir(args.config, groups=["db"])  # refuses unless routed via the bridge
    except ProjectError as exc:
        fail(exc)
    target = DbTarget.from_settings(load_settings(args.config))
    primary = primary_of(nr.inventory)
    replica = replicas_of(nr.inventory)[0]
    try:
        return load(args, target, primary, replica, database_name(primary), total)
    except DbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _write_rows(writer: Connection, db: str, run: str, total: int, rate: int,
                acked: dict[int, float]) -> float:
    """Insert rows 1..total at `rate` a second, noting when each was acknowledged; seconds."""
    start = time.monotonic()
    for seq in range(1, total + 1):
        pause = start + (seq - 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        query(writer, f"INSERT INTO {db}.lag_bench (run, seq, committed_at) "
                      "VALUES (%s, %s, NOW(6))", (run, seq))
        acked[seq] = time.time()
    return time.monotonic() - start


def _print_delays(seen: dict[int, float], committed: dict[int, float],
                  acked: dict[int, float]) -> None:
    """p50/p99/max of commit -> visible and acknowledged -> visible (nothing if none seen)."""
    delays = [(seen[s] - committed[s]) * 1000 for s in seen]
    after_ack = [(seen[s] - acked[s]) * 1000 for s in seen if s in acked]
    if delays:
        print(f"delay commit (primary NOW(6)) -> visible on replica: p50 "
              f"{percentile(delays, 0.5):.2f} ms, p99 {percentile(delays, 0.99):.2f} ms, "
              f"max {max(delays):.2f} ms")
        print(f"delay commit acknowledged -> visible on replica:     p50 "
              f"{percentile(after_ack, 0.5):.2f} ms, p99 "
              f"{percentile(after_ack, 0.99):.2f} ms, max {max(after_ack):.2f} ms "
              "(poll interval ~1 ms)")


def load(args: argparse.Namespace, target: DbTarget, primary: Host, replica: Host, db: str,
         total: int) -> int:
    """Write `total` rows at the rate, poll the replica on its own connection, report."""
    run = uuid.uuid4().hex[:12]
    seen: dict[int, float] = {}
    committed: dict[int, float] = {}
    acked: dict[int, float] = {}
    done = threading.Event()
    writer = connect_admin(target, primary)
    reader = connect_admin(target, replica)
    poll_conn = connect_admin(target, replica)

    def poll() -> None:
        last = 0
        while not done.is_set():
            rows = query(poll_conn, f"SELECT seq, UNIX_TIMESTAMP(committed_at) AS t "
                                    f"FROM {db}.lag_bench WHERE run = %s AND seq > %s",
                         (run, last))
            now = time.time()
            for row in rows:
                seen.setdefault(row["seq"], now)
                committed[row["seq"]] = float(row["t"])
            if rows:
                last = max(last, *(r["seq"] for r in rows))
            if len(seen) >= total:
                return
            time.sleep(0.001)

    poller = threading.Thread(target=poll, daemon=True)
    try:
        poller.start()
        print(f"writing {total} rows to {primary.name} at {args.rate}/s, "
              f"reading on {replica.name}")
        wrote = _write_rows(writer, db, run, total, args.rate, acked)
        poller.join(args.drain)
    finally:
        done.set()
        poller.join()  # the poller checks `done` every millisecond (queries are bounded)
    on_primary = scalar(writer, f"SELECT COUNT(*) FROM {db}.lag_bench WHERE run = %s", (run,))
    on_replica = scalar(reader, f"SELECT COUNT(*) FROM {db}.lag_bench WHERE run = %s", (run,))
    try:
        print(f"run {run}: {total} writes in {wrote:.2f} s ({total / wrote:.0f}/s)")
        _print_delays(seen, committed, acked)
        print(f"rows: primary {on_primary}, replica {on_replica}, seen by the poller {len(seen)}")
    finally:
        if not args.keep:
            query(writer, f"DELETE FROM {db}.lag_bench WHERE run = %s", (run,))
        for conn in (writer, reader, poll_conn):
            conn.close()
    ok = on_primary == on_replica == total == len(seen)
    print("rows equal on both sides" if ok else "ROW COUNTS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
