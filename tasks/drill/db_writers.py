"""The db drill's writers: threads inserting unique rows the way the app does.

The rule mirrors templates/php/index.php.j2 (``db_discover``, ``db_primary_link``,
``db_write_visit``), with the app's account and its db.php list of nodes:

- the primary is the first node of the list that answers with ``@@read_only = 0`` (connect
  timeout 1 s, read timeout 2 s), remembered for 30 s (shared by the writers, as the page's
  cache file is shared by a web server's requests);
- a remembered primary that does not answer is forgotten and every node is asked again;
- a node that did not answer when asked (connect, greeting or ``@@read_only`` timed out) is
  skipped for 2 s by every writer; once that time is over, one writer asks it while the others
  keep skipping it. A write that timed out does not make its node suspect (a primary whose
  commits wait for a replica's acknowledgement answers);
- a refused write (1290: read-only) is certainly not applied: ask again, retry once;
- a connection lost during the write (2006, 2013) is not retried: outcome unknown (info).

Each row is ``visits.served_by = <run>-w<writer>-<seq>``. Run as a module inside a web node's
network namespace (the app account is granted to the web servers' addresses only):
``python -m tasks.drill.db_writers`` reads one JSON line on stdin (nodes, account, run,
writers), writes until stdin closes, then prints every operation as JSON on stdout.
Before writing, each node's address must be on the node's own link (no gateway): the
traffic stays on the lab segment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pymysql

from tasks.drill.db_history import Op

CONNECT_TIMEOUT = 1  # the page's MYSQLI_OPT_CONNECT_TIMEOUT
READ_TIMEOUT = 2  # the page's MYSQLI_OPT_READ_TIMEOUT
PRIMARY_TTL = 30.0  # the page's DB_PRIMARY_TTL
SUSPECT_TTL = 2.0  # the page's DB_SUSPECT_TTL
NO_ANSWER = (2002, 2003, 2006, 2013)  # the page's DB_NO_ANSWER: the node did not answer
UNKNOWN = (2006, 2013)  # connection lost during the write
READ_ONLY = 1290
PAUSE = 0.02  # between two writes of one writer
MAX_OPS = 200_000  # a bound on the history of one run


class NoPrimary(Exception):
    """No node accepts writes (nothing was sent)."""


@dataclass
class Discovery:
    """The app's choice of the primary, shared by the writers."""

    nodes: list[tuple[str, int]]
    user: str
    password: str
    database: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    cached: tuple[str, int] | None = None
    cached_at: float = 0.0
    suspects: dict[tuple[str, int], float] = field(default_factory=dict)  # node -> marked at

    def connect(self, node: tuple[str, int]) -> pymysql.connections.Connection:
        return pymysql.connect(host=node[0], port=node[1], user=self.user,
                               password=self.password, database=self.database,
                               connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                               write_timeout=READ_TIMEOUT, autocommit=True)

    def remember(self, node: tuple[str, int] | None) -> None:
        with self.lock:
            self.cached, self.cached_at = node, time.monotonic()

    def note_error(self, node: tuple[str, int], exc: BaseException) -> None:
        """A node that did not answer is suspect from now on (a refusal is an answer)."""
        if code_of(exc) in NO_ANSWER:
            with self.lock:
                self.suspects[node] = time.monotonic()

    def skip_suspect(self, node: tuple[str, int]) -> bool:
        """True while `node` is suspect; once its time is over, marked again (this writer
        asks it, the others keep skipping it) and False."""
        with self.lock:
            at = self.suspects.get(node)
            if at is None:
                return False
            now = time.monotonic()
            if now - at < SUSPECT_TTL:
                return True
            self.suspects[node] = now
            return False

    def discover(self) -> tuple[pymysql.connections.Connection, str]:
        errors = []
        for node in self.nodes:
            if self.skip_suspect(node):
                errors.append(f"{node[0]}: skipped (did not answer in the last {SUSPECT_TTL:g} s)")
                continue
            try:
                link = self.connect(node)
                with self.lock:
                    self.suspects.pop(node, None)  # it answers
                with link.cursor() as cur:
                    cur.execute("SELECT @@read_only")
                    if int(cur.fetchone()[0]) == 0:
                        self.remember(node)
                        return link, node[0]
                link.close()
                errors.append(f"{node[0]} read-only")
            except pymysql.MySQLError as exc:
                self.note_error(node, exc)
                errors.append(f"{node[0]}: {exc}")
        self.remember(None)
        raise NoPrimary("; ".join(errors))

    def primary_link(self) -> tuple[pymysql.connections.Connection, str]:
        with self.lock:
            fresh = self.cached is not None and time.monotonic() - self.cached_at <= PRIMARY_TTL
            cached = self.cached if fresh else None
        if cached is not None:
            try:
                return self.connect(cached), cached[0]
            except pymysql.MySQLError as exc:
                self.remember(None)
                self.note_error(cached, exc)
        return self.discover()


def code_of(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def write_one(disc: Discovery, key: str, client: str) -> tuple[str, str, str]:
    """Insert the row `key` as the page does: (outcome, address written to, error)."""
    try:
        link, address = disc.primary_link()
    except NoPrimary as exc:
        return "fail", "", str(exc)
    for attempt in (1, 2):
        try:
            with link.cursor() as cur:
                cur.execute("INSERT INTO visits (served_by, client) VALUES (%s, %s)",
                            (key, client))
            link.close()
            return "ok", address, ""
        except pymysql.MySQLError as exc:
            disc.remember(None)
            _close(link)
            code = code_of(exc)
            if code in UNKNOWN:  # not a suspect: commits waiting for a replica time out too
                return "info", address, str(exc)
            if code != READ_ONLY or attempt > 1:
                return "fail", address, str(exc)
            try:
                link, address = disc.discover()
            except NoPrimary as again:
                return "fail", "", str(again)
    return "fail", address, "unreachable"  # pragma: no cover - the loop always returns


def _close(link: pymysql.connections.Connection) -> None:
    try:
        link.close()
    except Exception:  # noqa: BLE001 - a lost connection may fail to close
        pass


def writer(number: int, run: str, disc: Discovery, client: str, stop: threading.Event,
           ops: list[Op]) -> None:
    """Write rows one after the other until `stop` (bounded by MAX_OPS in all)."""
    seq = 0
    while not stop.is_set() and len(ops) < MAX_OPS:
        seq += 1
        key = f"{run}-w{number}-{seq}"
        start = time.monotonic()
        outcome, address, error = write_one(disc, key, client)
        ops.append(Op(number, key, start, time.monotonic(), outcome, address, error[:200]))
        stop.wait(PAUSE)


def on_link(address: str) -> bool:
    """The kernel reaches `address` directly on a link (no gateway) from here."""
    done = subprocess.run(["ip", "-j", "route", "get", address], capture_output=True,
                          text=True, check=False)
    routes = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    return bool(routes) and "gateway" not in routes[0] and "dev" in routes[0]


def main() -> int:
    config: dict[str, Any] = json.loads(sys.stdin.readline())
    nodes = [(str(a), int(p)) for a, p in config["nodes"]]
    off = [a for a, _ in nodes if not on_link(a)]
    if off:
        print(json.dumps({"error": f"not on this node's link: {', '.join(off)}"}))
        return 3
    disc = Discovery(nodes, config["user"], config["password"], config["database"])
    stop, ops = threading.Event(), []
    threads = [threading.Thread(target=writer, daemon=True,
                                args=(n, config["run"], disc, config["client"], stop, ops))
               for n in range(int(config["writers"]))]
    for thread in threads:
        thread.start()
    print(json.dumps({"started": time.monotonic()}), flush=True)
    sys.stdin.read()  # until the drill closes it
    stop.set()
    for thread in threads:
        thread.join(timeout=2 * READ_TIMEOUT + 5)
    print(json.dumps({"ops": [o.to_dict() for o in ops]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
