"""Changing the database primary under a write load, against the lab's real MariaDB.

A writer thread requests web1's page again and again: each request writes one visit row
through the page's discovery of the primary (the app account), and is recorded with its
outcome, the Jepsen way: ok (the page shows the row id and the node written to), fail (the
page says it could not write), info (unknown: connection lost or timed out during the write).
Afterwards every ok row must be on the primary (lost = 0) and no row may appear that was
neither ok nor info (phantom = 0). The largest gap between two ok writes is printed (the
write pause), never asserted (wall-clock).

Without the load: a diverged replica refused by rejoin, then rebuilt with mariadb-backup (an
interrupted rebuild run again); a dead replica blocking writes until `degrade`, and db_status
saying so; a failover refused because the replica restarted since it was last seen in sync.

Every test leaves the tier as it found it: primary db1, replica db2, in sync.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import pymysql
import pytest
from conftest import DeployRun
from db_heal import healthy, tier_state

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import REPO_ROOT, load_settings
from tasks.db.sql import DbTarget, connect_admin, query, scalar
from tasks.db.verify import wait_marker, write_marker
from tp5lab.control import Lab

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("db_tier_kept")]

DB = "app_nulle"
PAGE = "http://10.5.1.11/"
MAX_WRITES = 20000
DB_LINE = re.compile(r"^db: visits=\d+ id=(\d+) host=(\S+)$", re.M)


@dataclass
class Op:
    start: float
    end: float
    outcome: str  # ok, fail, info
    row: int | None = None
    host: str = ""


@dataclass
class Writer:
    """Requests the page in a thread until stopped (bounded by MAX_WRITES)."""

    ops: list[Op] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _one(self) -> Op:
        start = time.monotonic()
        try:
            with urllib.request.urlopen(PAGE, timeout=8) as response:
                page = response.read().decode()
        except OSError:
            return Op(start, time.monotonic(), "info")
        end = time.monotonic()
        match = DB_LINE.search(page)
        if match:
            return Op(start, end, "ok", int(match.group(1)), match.group(2))
        return Op(start, end, "info" if "outcome unknown" in page else "fail")

    def _run(self) -> None:
        while not self.stop.is_set() and len(self.ops) < MAX_WRITES:
            self.ops.append(self._one())

    def finish(self) -> list[Op]:
        self.stop.set()
        self.thread.join(timeout=30)
        return self.ops

    def wait_ok(self, host: str, timeout: float = 60) -> None:
        """Until a write succeeded on `host` (bounded)."""
        deadline = time.monotonic() + timeout
        while not any(o.outcome == "ok" and o.host == host for o in self.ops[-50:]):
            assert time.monotonic() < deadline, f"no write on {host} within {timeout} s"
            time.sleep(0.1)


def target() -> DbTarget:
    return DbTarget.from_settings(load_settings())


def connect(name: str) -> pymysql.connections.Connection:
    return connect_admin(target(), build_nornir(groups=["db"]).inventory.hosts[name])


def max_id(primary: str = "db1") -> int:
    return int(scalar(connect(primary), f"SELECT COALESCE(MAX(id), 0) FROM {DB}.visits"))


def marker_in_background(token: str, source: str, read_timeout: float,
                         ) -> tuple[threading.Thread, list[BaseException | None]]:
    """Insert a marker row on db1 in a thread (its commit may wait for an acknowledgement);
    the thread and its outcome: [None] once it returned OK, [the exception] if it failed."""
    conn = connect_admin(target(), build_nornir(groups=["db"]).inventory.hosts["db1"],
                         read_timeout=read_timeout)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            query(conn, f"INSERT INTO {DB}.markers (token, source) VALUES (%s, %s)",
                  (token, source))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            outcome.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, outcome


def failover_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "runbooks/db_failover.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    print(done.stdout, done.stderr)
    return done


def judge(ops: list[Op], primary: str, since: int) -> dict[str, float]:
    """lost, phantom, ok/fail/info counts and the largest gap between ok writes (ms)."""
    conn = connect(primary)
    rows = {r["id"] for r in query(conn, f"SELECT id FROM {DB}.visits WHERE id > %s "
                                         "AND client = '10.5.1.1'", (since,))}
    ok = {o.row for o in ops if o.outcome == "ok"}
    info = sum(o.outcome == "info" for o in ops)
    ends = sorted(o.end for o in ops if o.outcome == "ok")
    gap = max((b - a for a, b in zip(ends, ends[1:], strict=False)), default=0.0)
    return {"ok": len(ok), "fail": sum(o.outcome == "fail" for o in ops), "info": info,
            "lost": len(ok - rows), "phantom": max(0, len(rows - ok) - info),
            "max_gap_ms": round(gap * 1000, 1)}


def wait_in_sync(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        cluster = tier_state()
        if healthy(cluster):  # primary db1, its replica in sync
            return
        assert time.monotonic() < deadline, cluster.problems
        time.sleep(0.3)


def same_rows() -> None:
    """Both nodes hold the same visits (after convergence)."""
    deadline = time.monotonic() + 20
    while True:
        one, two = (query(connect(n), f"CHECKSUM TABLE {DB}.visits")[0]["Checksum"]
                    for n in ("db1", "db2"))
        if one == two:
            return
        assert time.monotonic() < deadline, (one, two)
        time.sleep(0.2)


def test_switchover_both_ways_under_load_loses_nothing(deployed: DeployRun) -> None:
    for to, new, old, was in (("db2", "10.5.1.212", "10.5.1.211", "db1"),
                              ("db1", "10.5.1.211", "10.5.1.212", "db2")):
        since = max_id(was)
        writer = Writer()
        writer.wait_ok(old)
        done = failover_cli("switchover", "--to", to)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"switchover done: {to} is the primary" in done.stdout
        writer.wait_ok(new)  # the page found the new primary by itself (no deploy)
        ops = writer.finish()
        verdict = judge(ops, to, since)
        print(f"\nswitchover to {to}: {verdict}")
        assert verdict["lost"] == 0 and verdict["phantom"] == 0, verdict
        hosts = [o.host for o in ops if o.outcome == "ok"]
        assert hosts[0] == old and hosts[-1] == new
        # Never both: once a write reached the new primary, none reached the old one.
        assert old not in hosts[hosts.index(new):]
    wait_in_sync()
    same_rows()


def test_switchover_refuses_bad_targets_with_exit_codes(lab: Lab) -> None:
    assert failover_cli("switchover", "--to", "web1").returncode == 2
    refused = failover_cli("switchover", "--to", "db1")
    assert refused.returncode == 1 and "db1 is already the primary" in refused.stdout
    assert failover_cli("failover").returncode == 1  # db1 is alive: no failover


def test_a_crashed_primary_restarts_read_only_without_its_unacknowledged_commit(
    deployed: DeployRun, lab: Lab,
) -> None:
    db1, db2 = connect("db1"), connect("db2")
    query(db2, "STOP SLAVE")  # no acknowledgement will come
    before = scalar(db1, "SELECT @@gtid_binlog_pos")
    _thread, outcome = marker_in_background("never-acknowledged", "crash test", 60)
    time.sleep(1.0)
    assert not outcome  # waiting for its ack
    assert scalar(db1, "SELECT @@gtid_binlog_pos") != before  # in the binlog, unacknowledged
    assert not outcome  # the client never saw OK (its connection dies with the node)
    lab.crash("db1")
    lab.restart("db1")
    subprocess.run(lab.nsenter_argv("db1", ["service", "mariadb", "start"]), check=True,
                   capture_output=True, timeout=120)
    db1 = connect("db1")
    assert scalar(db1, "SELECT @@read_only") == 1  # restarted read-only
    assert not query(db1, f"SELECT 1 FROM {DB}.markers WHERE token = 'never-acknowledged'")
    assert scalar(db1, "SELECT @@gtid_binlog_pos") == before  # its binlog event truncated
    query(db2, "START SLAVE")
    deploy = subprocess.run([sys.executable, "runbooks/deploy.py", "--group", "db"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "open db1 for writes" in " ".join(deploy.stdout.split())
    wait_in_sync()
    assert not query(connect("db2"), f"SELECT 1 FROM {DB}.markers "
                                     "WHERE token = 'never-acknowledged'")


def on_node(lab: Lab, name: str, command: str) -> None:
    subprocess.run(lab.nsenter_argv(name, ["sh", "-c", command]), check=True,
                   capture_output=True, timeout=120)


def test_an_old_primary_back_without_a_transaction_its_replica_holds_is_replaced_by_it(
    deployed: DeployRun, lab: Lab,
) -> None:
    """The dead end of a restart that drops an in-doubt tail the replica had acknowledged:
    db1 comes back read-only lacking a row db2 holds. Made deterministic: db1's data is put
    back from a copy taken before the write. The deploy refuses to reopen db1 and names the
    way out; `failover --to db2` takes it (db1 holds nothing db2 lacks), `rejoin db1` brings
    the row to db1, and a switchover gives the tier back to db1."""
    wait_in_sync()
    on_node(lab, "db1", "service mariadb stop && rm -rf /var/lib/mysql.keep && "
                        "cp -a /var/lib/mysql /var/lib/mysql.keep && service mariadb start")
    reopen = subprocess.run([sys.executable, "runbooks/deploy.py", "--group", "db"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert reopen.returncode == 0, reopen.stdout + reopen.stderr
    wait_in_sync()
    token = write_marker(connect("db1"), DB, "dead end test")  # acknowledged: db2 has it
    assert wait_marker(connect("db2"), DB, token, 10) is not None
    on_node(lab, "db1", "pkill -KILL -x mysqld_safe; pkill -KILL -x mariadbd; sleep 0.5; "
                        "rm -rf /var/lib/mysql && mv /var/lib/mysql.keep /var/lib/mysql && "
                        "service mariadb start")
    db1 = connect("db1")
    assert scalar(db1, "SELECT @@read_only") == 1
    assert not query(db1, f"SELECT 1 FROM {DB}.markers WHERE token = %s", (token,))
    refused = subprocess.run([sys.executable, "runbooks/deploy.py", "--group", "db"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    flat = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0, flat
    assert "db2 holds everything db1 has: promote it with runbooks/db_failover.py failover " \
           "--to db2, then runbooks/db_failover.py rejoin db1" in flat
    assert failover_cli("failover", "--to", "db2").returncode == 0
    assert failover_cli("rejoin", "db1").returncode == 0
    assert query(connect("db1"), f"SELECT 1 FROM {DB}.markers WHERE token = %s", (token,))
    assert failover_cli("switchover", "--to", "db1").returncode == 0
    wait_in_sync()
    same_rows()


def test_failover_after_a_crash_loses_no_acknowledged_write_then_rejoin(
    deployed: DeployRun, lab: Lab,
) -> None:
    since = max_id()
    writer = Writer()
    writer.wait_ok("10.5.1.211")
    time.sleep(0.5)
    crashed = time.monotonic()
    lab.crash("db1")
    # Refused while db2 still believes in db1 (no RST from a dead box: about 4 s).
    deadline = time.monotonic() + 20
    while True:
        done = failover_cli("failover", "--to", "db2")
        if done.returncode == 0:
            break
        assert "still receives" in done.stdout or "answers" in done.stdout, done.stdout
        assert time.monotonic() < deadline, done.stdout
        time.sleep(0.5)
    promoted = time.monotonic()
    assert "failover done: db2 is the primary" in done.stdout
    assert scalar(connect("db2"), f"SELECT MAX(epoch) FROM {DB}.failovers") >= 1
    lab.restart("db1")
    rejoined = failover_cli("rejoin", "db1")
    assert rejoined.returncode == 0, rejoined.stdout + rejoined.stderr
    writer.wait_ok("10.5.1.212")
    ops = writer.finish()
    verdict = judge(ops, "db2", since)
    print(f"\nfailover: crash to promotion {promoted - crashed:.2f} s; {verdict}")
    assert verdict["lost"] == 0 and verdict["phantom"] == 0, verdict
    assert scalar(connect("db1"), "SELECT @@read_only") == 1
    # A deploy now keeps db2 as the primary and says the inventory disagrees.
    deploy = subprocess.run([sys.executable, "runbooks/deploy.py", "--group", "db"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    flat = " ".join(deploy.stdout.split())
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "actual primary is db2" in flat, flat
    assert scalar(connect("db2"), "SELECT @@read_only") == 0
    assert scalar(connect("db1"), "SELECT @@read_only") == 1
    back = failover_cli("switchover", "--to", "db1")
    assert back.returncode == 0, back.stdout
    wait_in_sync()
    same_rows()


def status_cli() -> subprocess.CompletedProcess[str]:
    """runbooks/db_status.py; its output flattened (rich wraps long lines)."""
    done = subprocess.run([sys.executable, "runbooks/db_status.py"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    print(done.stdout, done.stderr)
    return subprocess.CompletedProcess(done.args, done.returncode, " ".join(done.stdout.split()),
                                       done.stderr)


def root_sql_on(lab: Lab, name: str, sql: str) -> None:
    subprocess.run(lab.nsenter_argv(name, ["mariadb", "-e", sql]), check=True,
                   capture_output=True, timeout=30)


def interrupted_rebuild(at: str) -> str:
    """Run `rebuild db2` and kill it when its output reaches `at`; its output so far."""
    proc = subprocess.Popen([sys.executable, "runbooks/db_failover.py", "rebuild", "db2"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if at in line:
            proc.kill()
            break
    proc.wait(timeout=30)
    print("".join(seen))
    assert any(at in line for line in seen), seen
    return "".join(seen)


def test_a_diverged_node_is_refused_by_rejoin_then_rebuilt(deployed: DeployRun,
                                                           lab: Lab) -> None:
    """db2 gets a transaction of its own (as root, outside replication): rejoin refuses
    and names the rebuild; the rebuild (interrupted once, then run again) re-clones db2 from
    db1 with mariadb-backup; db2 then replicates db1 exactly."""
    query(connect("db2"), "STOP SLAVE")
    root_sql_on(lab, "db2", f"SET sql_log_bin = 1; INSERT INTO {DB}.markers (token, source) "
                            "VALUES ('diverged', 'root')")
    refused = failover_cli("rejoin", "db2")
    assert refused.returncode == 1
    flat = " ".join(refused.stdout.split())
    assert "diverged" in flat and "re-clone db2" in flat
    assert "runbooks/db_failover.py rebuild db2" in flat
    primary = failover_cli("rebuild", "db1")
    assert primary.returncode == 1 and "db1 is the primary: refusing to rebuild it" in \
        " ".join(primary.stdout.split())
    # db1's commits wait for an ack db2 cannot give: going async must be decided first.
    blocked = failover_cli("rebuild", "db2")
    assert blocked.returncode == 1
    assert "runbooks/db_failover.py degrade" in " ".join(blocked.stdout.split())
    assert failover_cli("degrade").returncode == 0
    # Interrupted once MariaDB is being stopped on db2 (its data not swapped yet).
    interrupted_rebuild("stop mariadb on db2 ...")
    rebuilt = failover_cli("rebuild", "db2", timeout=900)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuild done: db2 replicates from db1" in rebuilt.stdout
    db1, db2 = connect("db1"), connect("db2")
    assert scalar(db2, "SELECT @@read_only") == 1
    assert not query(db2, f"SELECT 1 FROM {DB}.markers WHERE token = 'diverged'")
    token = write_marker(db1, DB, "after rebuild")
    assert wait_marker(db2, DB, token, 10) is not None
    wanted = scalar(db1, "SELECT @@gtid_binlog_pos")
    deadline = time.monotonic() + 10
    while scalar(db2, "SELECT @@gtid_current_pos") != wanted:
        assert time.monotonic() < deadline, (wanted, scalar(db2, "SELECT @@gtid_current_pos"))
        time.sleep(0.1)
    wait_in_sync()
    same_rows()
    status = status_cli()
    assert status.returncode == 0 and "DEGRADED" not in status.stdout, status.stdout


def test_degrade_releases_writes_blocked_by_a_dead_replica(deployed: DeployRun,
                                                           lab: Lab) -> None:
    """db2 crashes: a write on db1 waits for an ack that never comes (no silent fallback);
    degrade (on purpose, recorded) releases it; db_status says DEGRADED and db2 not
    promotable until db2 is back, caught up and semi-sync on again (rejoin)."""
    wait_in_sync()
    lab.crash("db2")
    thread, outcome = marker_in_background("while-degraded", "degrade test", 120)
    try:
        thread.join(5.0)
        assert thread.is_alive() and not outcome  # waits for an acknowledgement
        degraded = failover_cli("degrade")
        assert degraded.returncode == 0 and "DEGRADED" in degraded.stdout
        thread.join(20.0)
        assert outcome == [None]  # the blocked write completed with OK
        status = status_cli()
        assert status.returncode == 1
        assert "DEGRADED" in status.stdout and "db2: NOT PROMOTABLE" in status.stdout
        assert "without semi-sync" in status.stdout
    finally:
        lab.restart("db2")
    rejoined = failover_cli("rejoin", "db2")  # starts mariadb, catches up, semi-sync on
    assert rejoined.returncode == 0, rejoined.stdout + rejoined.stderr
    assert "it was off (degraded): on again" in rejoined.stdout
    status = status_cli()
    assert status.returncode == 0, status.stdout
    assert "DEGRADED" not in status.stdout and "db2: promotable" in status.stdout
    assert query(connect("db2"), f"SELECT 1 FROM {DB}.markers WHERE token = 'while-degraded'")
    wait_in_sync()


def engine_holds_every_commit(name: str, timeout: float = 20) -> None:
    """Rotate the node's binlog and wait until its checkpoint names the new file: InnoDB has
    then made every commit of the old file durable, so a crash leaves nothing in doubt.

    The rotation alone is not enough: InnoDB flushes its commit records a moment later, and a
    crash in between makes the restart (init_rpl_role=SLAVE) truncate that in-doubt tail.
    """
    conn = connect(name)
    query(conn, "FLUSH BINARY LOGS")
    newest = query(conn, "SHOW BINARY LOGS")[-1]["Log_name"]
    deadline = time.monotonic() + timeout
    while True:
        events = query(conn, f"SHOW BINLOG EVENTS IN '{newest}'")
        if any(e["Event_type"] == "Binlog_checkpoint" and e["Info"] == newest for e in events):
            return
        assert time.monotonic() < deadline, (newest, events)
        time.sleep(0.1)


def test_failover_refuses_a_replica_that_restarted_since_it_was_last_seen_in_sync(
    deployed: DeployRun, lab: Lab,
) -> None:
    """db1 crashes, then db2's mariadbd restarts (its relay log dropped): failover refuses
    and says what to do; doing it (db1 back, a deploy reopens it) heals the tier."""
    wait_in_sync()
    assert status_cli().returncode == 0  # seen healthy: recorded
    # Nothing in doubt at the crash: this test is about the replica's restart; an old
    # primary that comes back without its in-doubt tail has its own test above.
    engine_holds_every_commit("db1")
    lab.crash("db1")
    subprocess.run(lab.nsenter_argv("db2", ["service", "mariadb", "restart"]), check=True,
                   capture_output=True, timeout=120)
    deadline = time.monotonic() + 20
    while True:
        refused = failover_cli("failover", "--to", "db2")
        flat = " ".join(refused.stdout.split())
        assert refused.returncode == 1, flat
        if "still receives" not in flat and "answers" not in flat:
            break
        assert time.monotonic() < deadline, flat
        time.sleep(0.5)
    assert "db2 restarted since it was last seen in sync" in flat, flat
    assert "runbooks/deploy.py --group db" in flat
    assert scalar(connect("db2"), "SELECT @@read_only") == 1
    lab.restart("db1")
    subprocess.run(lab.nsenter_argv("db1", ["service", "mariadb", "start"]), check=True,
                   capture_output=True, timeout=120)
    deploy = subprocess.run([sys.executable, "runbooks/deploy.py", "--group", "db"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    wait_in_sync()
    same_rows()


def test_the_page_discovery_cost(deployed: DeployRun, lab: Lab) -> None:
    """Page time with the remembered primary, and when every request must ask the nodes."""
    cache = "/tmp/app_nulle-web1-db-primary"

    def page_ms(forget: bool) -> list[float]:
        times = []
        for _ in range(30):
            if forget:
                subprocess.run(lab.nsenter_argv("web1", ["rm", "-f", cache]), check=True)
            start = time.monotonic()
            with urllib.request.urlopen(PAGE, timeout=8) as response:
                page = response.read().decode()
            times.append((time.monotonic() - start) * 1000)
            match = DB_LINE.search(page)
            assert match and match.group(2) == "10.5.1.211", page
        return sorted(times)

    cached, asked = page_ms(False), page_ms(True)
    print(f"\npage median: {cached[15]:.1f} ms with the remembered primary, "
          f"{asked[15]:.1f} ms when it asks every node")
