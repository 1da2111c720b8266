"""The database tier against the local lab: deploy from fresh nodes, replication, read-only
replica, idempotence, recovery of a stopped replica, and bad settings failing one host.

The tests run in order on the session's fresh lab and each leaves the tier healthy.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pymysql
import pytest
from conftest import DeployRun
from nornir.core import Nornir
from nornir.core.task import AggregatedResult

from tasks.core.guard import check_addresses
from tasks.core.nornir_build import build_nornir
from tasks.core.settings import ProjectError, load_settings
from tasks.db.sql import DbTarget, connect_admin, query, scalar
from tasks.db.verify import (
    cluster_from_results,
    cluster_status,
    db_status,
    tier_statuses,
    verify_db,
    wait_marker,
    write_marker,
    write_refusal,
)
from tasks.deploy.files import MARIADB_SETTINGS as SETTINGS_PATH
from tasks.deploy.host import Stack, deploy_host
from tasks.deploy.order import TierGate
from tasks.deploy.report import HostReport
from tp5lab.control import Lab
from tp5lab.inventory_factory import write_inventory

pytestmark = pytest.mark.lab

DB = "app_nulle"


def db_nornir() -> Nornir:
    return build_nornir(groups=["db"])


def target() -> DbTarget:
    return DbTarget.from_settings(load_settings())


def deploy(nr: Nornir) -> AggregatedResult:
    """The per-host deploy task on the db hosts of `nr` (their data as the test set it); the
    rest of the inventory (web servers, the other db host) is the repository's."""
    inventory = build_nornir(check_lab=False).inventory
    inventory.hosts.update(nr.inventory.hosts)
    gate = TierGate({"db": len(nr.inventory.hosts)})
    return nr.run(task=deploy_host, stack=Stack(inventory, target(), gate))


def report(result: AggregatedResult, name: str) -> HostReport:
    assert isinstance(result[name][0].result, HostReport), result[name][0].result
    return result[name][0].result


def connect(nr: Nornir, name: str) -> pymysql.connections.Connection:
    return connect_admin(target(), nr.inventory.hosts[name])


def tokens(conn: pymysql.connections.Connection) -> set[str]:
    return {r["token"] for r in query(conn, f"SELECT token FROM {DB}.markers")}


def wait_same_rows(primary: pymysql.connections.Connection,
                   replica: pymysql.connections.Connection, timeout: float = 10) -> set[str]:
    deadline = time.monotonic() + timeout
    want = tokens(primary)
    while tokens(replica) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tokens(replica) == want
    return want


def assert_healthy(nr: Nornir) -> None:
    cluster = cluster_from_results(nr.run(task=db_status, target=target()))
    assert cluster.ok, cluster.problems
    assert cluster.primary == "db1"


def semi_status(conn: pymysql.connections.Connection) -> dict[str, str]:
    return {r["Variable_name"]: r["Value"] for r in query(
        conn, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")}


def refused_write(conn: pymysql.connections.Connection) -> bool:
    try:
        write_marker(conn, DB, "should be refused")
    except pymysql.MySQLError as exc:
        return exc.args[0] == 1290
    return False


class Writer:
    """One marker written on db1 in a thread (its own connection, 60 s read timeout):
    ``done`` is set once the commit returned (``token``) or failed (``error``)."""

    def __init__(self, nr: Nornir, source: str) -> None:
        self.done = threading.Event()
        self.token: str | None = None
        self.error: BaseException | None = None
        self.conn = connect_admin(target(), nr.inventory.hosts["db1"], read_timeout=60)
        threading.Thread(target=self._run, args=(source,), daemon=True).start()

    def _run(self, source: str) -> None:
        try:
            self.token = write_marker(self.conn, DB, source)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            self.done.set()


def sql_threads(conn: pymysql.connections.Connection) -> set[int]:
    """Ids of the replica's IO and SQL threads (they change when replication restarts)."""
    return {r["ID"] for r in query(conn, "SELECT ID FROM information_schema.PROCESSLIST "
                                         "WHERE USER = 'system user'")}


def test_fresh_nodes_get_a_primary_and_a_running_replica(lab: Lab) -> None:
    nr = db_nornir()
    result = deploy(nr)
    assert not result.failed, {h: str(m[0].exception) for h, m in result.items() if m.failed}
    assert result["db1"][0].changed and result["db2"][0].changed
    db1, db2 = report(result, "db1"), report(result, "db2")
    assert "+server_id = 1" in db1.diff and "+read_only = ON" in db2.diff
    assert "create database app_nulle" in db1.actions
    assert "create account 'repl'@'10.5.1.212'" in db1.actions
    assert "open db1 for writes (no node accepted writes; first deploy: no node replicates " \
           "yet)" in db1.actions
    assert any(a.startswith("replicate from db1 (10.5.1.211)") for a in db2.actions)
    # The primary's own first writes could not wait for a replica that was not there yet:
    # semi-sync is turned on once the replica has caught up.
    assert "turn semi-sync on at db1 (db2 acknowledges)" in db2.actions
    primary = connect(nr, "db1")
    assert scalar(primary, "SELECT @@rpl_semi_sync_master_enabled") == 1
    status = {r["Variable_name"]: r["Value"] for r in query(
        primary, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")}
    assert status["Rpl_semi_sync_master_status"] == "ON"
    assert status["Rpl_semi_sync_master_clients"] == "1"
    assert db1.timings["verify"] > 0 and db2.timings["sql"] > 0
    assert_healthy(nr)
    verified = nr.run(task=verify_db, target=target(),
                      inventory=build_nornir(check_lab=False).inventory)
    assert not verified.failed, {h: str(m[0].exception) for h, m in verified.items()}
    delay = verified["db2"][0].result["marker_delay_s"]
    print(f"\nmarker written on db1 read on db2 after {delay * 1000:.1f} ms")
    assert delay < 5


def test_rows_written_on_the_primary_appear_on_the_replica(lab: Lab) -> None:
    nr = db_nornir()
    primary, replica = connect(nr, "db1"), connect(nr, "db2")
    written = {write_marker(primary, DB, "test rows") for _ in range(50)}
    assert written <= wait_same_rows(primary, replica)
    token = write_marker(primary, DB, "one more")
    assert wait_marker(replica, DB, token, 5.0) is not None


def test_a_replica_is_never_taken_for_diverged_while_the_primary_takes_writes(
        lab: Lab) -> None:
    """Writes go on while the tier is read (the app, the deploy's own checks): the replica's
    position may then be past an earlier read of the primary's; no false DIVERGED."""
    nr = db_nornir()
    stop = threading.Event()
    primary = connect(nr, "db1")

    def write() -> None:
        deadline = time.monotonic() + 10  # bounded in time and count
        for _ in range(2000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            write_marker(primary, DB, "while reading the tier")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        for _ in range(25):
            problems = cluster_status(tier_statuses(target(), nr.inventory)).problems
            assert not [p for p in problems if "DIVERGED" in p], problems
    finally:
        stop.set()
        writer.join(15)


def inside(lab: Lab, host: str, command: str, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    argv = lab.nsenter_argv(host, ["env", *[f"{k}={v}" for k, v in (env or {}).items()],
                                   "sh", "-c", command])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_no_framework_account_can_write_on_a_read_only_node(lab: Lab) -> None:
    """The admin (from the controller), the app account (from a web server) and the
    replication account (from the other db node) are all refused on the read-only db2."""
    nr = db_nornir()
    replica = connect(nr, "db2")
    secrets = target().secrets
    rows = query(replica, "SELECT GRANTEE, PRIVILEGE_TYPE FROM "
                          "information_schema.USER_PRIVILEGES")
    for user in ("tp5admin", DB, "repl"):
        privileges = {r["PRIVILEGE_TYPE"] for r in rows if f"'{user}'@" in r["GRANTEE"]}
        assert privileges, user
        assert not privileges & {"SUPER", "READ_ONLY ADMIN", "ALL PRIVILEGES"}, user
    before = scalar(replica, f"SELECT COUNT(*) FROM {DB}.markers")
    assert write_refusal(replica, DB) is not None  # the admin account: 1290
    insert = f"INSERT INTO {DB}.markers (token, source) VALUES (UUID(), 'account test')"
    for host, user, password in (("web1", DB, secrets.app),
                                 ("db1", "repl", secrets.replication)):
        done = inside(lab, host, f"mariadb -h 10.5.1.212 -u {user} -e \"{insert}\"",
                      env={"MYSQL_PWD": password})
        # 1290: read-only (the app account could write on the primary); 1142: no privilege.
        assert done.returncode != 0, (user, done.stdout)
        assert "ERROR 1290" in done.stderr or "ERROR 1142" in done.stderr, (user, done.stderr)
    assert scalar(replica, f"SELECT COUNT(*) FROM {DB}.markers") == before


def test_the_replica_refuses_writes_and_the_admin_cannot_bypass_it(lab: Lab) -> None:
    nr = db_nornir()
    replica, primary = connect(nr, "db2"), connect(nr, "db1")
    grants = " ".join(str(next(iter(r.values()))) for r in query(replica, "SHOW GRANTS"))
    assert "SUPER" not in grants and "READ_ONLY ADMIN" not in grants
    assert "ALL PRIVILEGES" not in grants
    before = scalar(replica, f"SELECT COUNT(*) FROM {DB}.markers")
    refusal = write_refusal(replica, DB)
    assert refusal is not None and "--read-only" in refusal
    assert scalar(replica, f"SELECT COUNT(*) FROM {DB}.markers") == before
    assert scalar(replica, "SELECT @@read_only") == 1
    assert scalar(primary, "SELECT @@read_only") == 0


def test_a_second_deploy_changes_nothing_and_keeps_replication_running(lab: Lab) -> None:
    nr = db_nornir()
    primary, replica = connect(nr, "db1"), connect(nr, "db2")
    position = scalar(primary, "SELECT @@gtid_binlog_pos")
    threads = sql_threads(replica)
    assert len(threads) == 2
    result = deploy(nr)
    assert not result.failed
    for name in ("db1", "db2"):
        assert not result[name][0].changed, result[name][0].result
        assert result[name][0].diff == ""
        assert report(result, name).actions == [] and report(result, name).files == []
    assert scalar(primary, "SELECT @@gtid_binlog_pos") == position  # nothing written
    assert sql_threads(replica) == threads  # replication never restarted


def test_a_stopped_and_lagging_replica_is_restarted_and_caught_up(lab: Lab) -> None:
    nr = db_nornir()
    primary, replica = connect(nr, "db1"), connect(nr, "db2")
    # Only the applier stops: the replica still receives (and acknowledges) every commit.
    query(replica, "STOP SLAVE SQL_THREAD")
    written = {write_marker(primary, DB, "while stopped") for _ in range(100)}
    time.sleep(0.3)
    assert not written & tokens(replica)  # the replica really fell behind
    status = cluster_from_results(nr.run(task=db_status, target=target()))
    assert not status.ok and any("IO=Yes SQL=No" in p for p in status.problems)
    result = deploy(nr)
    assert not result.failed, {h: str(m[0].exception) for h, m in result.items() if m.failed}
    assert not result["db1"][0].changed
    assert result["db2"][0].changed
    assert report(result, "db2").actions == ["start replication"]
    # The deploy returned only once caught up: every row is there already.
    assert tokens(replica) == tokens(primary)
    assert written <= tokens(replica)
    assert_healthy(nr)


def test_a_duplicate_server_id_in_the_inventory_is_refused_naming_the_hosts(
    lab: Lab, tmp_path: Path
) -> None:
    config = write_inventory(tmp_path, 3, host_changes={"db2": {"data": {"db_server_id": 1}}})
    with pytest.raises(ProjectError) as err:
        build_nornir(config, groups=["db"])
    message = str(err.value)
    assert "host db2" in message and "db_server_id" in message and "also used by db1" in message


def test_a_replica_with_the_primarys_server_id_fails_alone_then_recovers(lab: Lab) -> None:
    nr = db_nornir()
    nr.inventory.hosts["db2"].data["db_server_id"] = 1  # past the inventory check
    result = deploy(nr)
    assert result["db2"].failed and not result["db1"].failed
    assert not result["db1"][0].changed
    error = str(result["db2"][0].exception)
    assert error.startswith("db2: replication from db1 failed")
    assert "1593" in error and "equal MariaDB server ids" in error, error
    # No replica acknowledges: a commit on the primary waits (no silent async fallback).
    primary = connect(nr, "db1")
    pending = Writer(nr, "primary waits for its replica")
    assert not pending.done.wait(2.0)
    assert scalar(primary, "SELECT @@rpl_semi_sync_master_enabled") == 1
    fixed = deploy(db_nornir())
    assert not fixed.failed, {h: str(m[0].exception) for h, m in fixed.items() if m.failed}
    assert fixed["db2"][0].changed and "+server_id = 2" in report(fixed, "db2").diff
    assert pending.done.wait(10.0) and pending.token
    replica = connect(db_nornir(), "db2")
    assert pending.token in tokens(replica)
    assert tokens(replica) == tokens(primary)
    assert_healthy(db_nornir())


def test_a_commit_waits_for_the_replica_instead_of_falling_back_to_async(lab: Lab) -> None:
    nr = db_nornir()
    primary, replica = connect(nr, "db1"), connect(nr, "db2")
    no_tx = semi_status(primary)["Rpl_semi_sync_master_no_tx"]
    query(replica, "STOP SLAVE")
    try:
        pending = Writer(nr, "waits for the ack")
        assert not pending.done.wait(3.0)  # not acknowledged: no replica has it
        assert semi_status(primary)["Rpl_semi_sync_master_status"] == "ON"
    finally:
        query(replica, "START SLAVE")
    assert pending.done.wait(10.0) and pending.error is None
    assert pending.token in wait_same_rows(primary, replica)
    assert semi_status(primary)["Rpl_semi_sync_master_no_tx"] == no_tx
    assert_healthy(nr)


def test_a_restarted_primary_boots_read_only_and_the_deploy_reopens_it(lab: Lab) -> None:
    nr = db_nornir()
    done = inside(lab, "db1", "service mariadb restart")
    assert done.returncode == 0, done.stderr
    primary = connect(nr, "db1")
    assert scalar(primary, "SELECT @@read_only") == 1  # never writable on its own
    assert refused_write(primary)
    result = deploy(nr)
    assert not result.failed, {h: str(m[0].exception) for h, m in result.items() if m.failed}
    assert "open db1 for writes (no node accepted writes; its replicas db2 hold nothing " \
           "it lacks)" in report(result, "db1").actions
    assert scalar(connect(nr, "db1"), "SELECT @@read_only") == 0
    assert_healthy(nr)


def test_a_setting_mariadbd_rejects_is_never_live(lab: Lab) -> None:
    nr = db_nornir()
    lab_argv = lab.nsenter_argv("db2", ["cat", SETTINGS_PATH])
    before = subprocess.run(lab_argv, capture_output=True, text=True, check=True).stdout
    nr.inventory.hosts["db2"].data["db_server_id"] = "2x"
    result = deploy(nr.filter(name="db2"))
    assert result["db2"].failed
    error = str(result["db2"][0].exception)
    assert error.startswith("db2: ") and "previous files restored" in error
    assert "server_id" in error, error
    after = subprocess.run(lab_argv, capture_output=True, text=True, check=True).stdout
    assert after == before
    assert_healthy(db_nornir())


def test_the_app_page_reflects_the_database(deployed: DeployRun) -> None:
    assert not check_addresses("tp5br0", ["10.5.1.11"])
    with urllib.request.urlopen("http://10.5.1.11/", timeout=5) as response:
        page = response.read().decode()
    match = re.search(r"^db: visits=(\d+) id=(\d+) host=10\.5\.1\.211$", page, re.M)
    assert match, page
    nr = db_nornir()
    primary, replica = connect(nr, "db1"), connect(nr, "db2")
    visit = int(match.group(2))
    row = query(primary, f"SELECT served_by FROM {DB}.visits WHERE id = %s", (visit,))
    assert row and row[0]["served_by"] == "web1.tp5.b2 10.5.1.11"
    deadline = time.monotonic() + 5
    while not query(replica, f"SELECT 1 FROM {DB}.visits WHERE id = %s", (visit,)):
        assert time.monotonic() < deadline, "the visit never reached the replica"
        time.sleep(0.05)
    assert re.search(r"^db-replica: visits=\d+ host=10\.5\.1\.212$", page, re.M), page
