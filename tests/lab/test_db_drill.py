"""The failover watcher and the db drill against the lab's real MariaDB.

The watcher: running, the primary's node crashed, it promotes the replica (within a bound:
the wait is bounded, the time is printed, never asserted), exactly one writable node.
The drill (--group db): each fault once, with the full check: lost, phantom and split-brain
writes all 0, exactly one writable node at the end, the old primary rejoined (same GTID
position and CHECKSUM TABLE on both). Each test leaves one writable node and its replica.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DeployRun
from db_heal import heal_db_tier

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import REPO_ROOT, load_settings
from tasks.db.sql import DbTarget, connect_admin, scalar
from tp5lab.control import Lab

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("db_tier_kept")]
DB_ANY_PRIMARY = True  # the drills leave the primary where their failover put it


def read_only(name: str) -> int | None:
    host = build_nornir(groups=["db"]).inventory.hosts[name]
    try:
        return int(scalar(connect_admin(DbTarget.from_settings(load_settings()), host),
                          "SELECT @@read_only"))
    except Exception:  # noqa: BLE001 - a dead node has no answer
        return None


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)
    print(done.stdout[-6000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module", autouse=True)
def db1_primary_again(lab: Lab) -> Iterator[None]:
    """The drills leave the primary where their last failover put it: give the tier back to
    the inventory's primary (db1) for the test files that follow, as an operator would."""
    yield
    heal_db_tier(lab)
    assert [read_only("db1"), read_only("db2")] == [0, 1]


def test_the_watcher_promotes_the_replica_of_a_crashed_primary(deployed: DeployRun,
                                                               lab: Lab) -> None:
    watcher = subprocess.Popen([sys.executable, "runbooks/db_failover.py", "watch",
                                "--duration", "120"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert watcher.stdout is not None
    lines = []
    for line in watcher.stdout:
        lines.append(line)
        if "watch: watching: primary db1" in line:
            break
    crashed = time.monotonic()
    lab.crash("db1")
    try:
        out, _ = watcher.communicate(timeout=60)  # --max-failovers 1: it ends after one
    finally:
        if watcher.poll() is None:
            watcher.kill()
    promoted = time.monotonic()
    text = "".join(lines) + out
    print(text, f"\ncrash to the watcher's end: {promoted - crashed:.2f} s")
    assert watcher.returncode == 0, text
    assert "confirmed: db2 lost db1 too" in text and "promoted: db2 is the primary" in text
    assert [read_only("db1"), read_only("db2")] == [None, 0]  # exactly one writable node
    # Degraded (the watcher's default): db2 takes writes while db1 is still dead, and says so.
    host = build_nornir(groups=["db"]).inventory.hosts["db2"]
    conn = connect_admin(DbTarget.from_settings(load_settings()), host, read_timeout=10)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO app_nulle.markers (token, source) VALUES (%s, %s)",
                    ("watcher-alone", "test"))
    conn.close()
    status = subprocess.run([sys.executable, "runbooks/db_status.py"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert status.returncode == 1 and "DEGRADED" in status.stdout, status.stdout
    lab.restart("db1")
    assert cli("runbooks/db_failover.py", "rejoin", "db1").returncode == 0
    assert [read_only("db1"), read_only("db2")] == [1, 0]
    status = subprocess.run([sys.executable, "runbooks/db_status.py"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert status.returncode == 0, status.stdout  # rejoined: semi-sync on, mark cleared


def test_a_watcher_does_not_fail_over_a_primary_that_answers(deployed: DeployRun) -> None:
    done = cli("runbooks/db_failover.py", "watch", "--duration", "3")
    assert done.returncode == 0 and "done (0 failover(s))" in done.stdout


@pytest.mark.parametrize("fault", ["crash", "kill", "switchover", "hang", "replica-crash",
                                   "link"])
def test_the_db_drill_loses_no_acknowledged_write(deployed: DeployRun, fault: str,
                                                   tmp_path: Path) -> None:
    if fault == "replica-crash" and read_only("db1") == 1:
        # db2 as the replica: listed after its primary, it is the case where rejoin must read
        # the primary again after it (a replica in sync under load looked diverged).
        assert cli("runbooks/db_failover.py", "switchover", "--to", "db1").returncode == 0
    report = tmp_path / "drill.json"
    done = cli("runbooks/failover_drill.py", "--group", "db", "--fault", fault, "--json",
               str(report), "--png", str(tmp_path / "drill.png"), timeout=400)
    data = json.loads(report.read_text())
    exp = data["experiments"][0]
    print({k: exp[k] for k in ("lost", "phantom", "split_brain", "info_committed",
                               "write_outage", "counts", "divergence")})
    assert done.returncode == 0, exp["problems"]
    assert (exp["lost"], exp["phantom"], exp["split_brain"]) == (0, 0, 0)
    if fault == "replica-crash":  # writes blocked: none acknowledged without the replica
        assert exp["divergence"]["acknowledged_without_replica"] == 0
        assert exp["divergence"]["semi_sync_with_replica_down"] == "ON"
    assert exp["counts"]["ok"] > 0
    assert exp["writable_at_end"] == [exp["successor"]]
    assert exp["divergence"]["diverged"] is False  # rejoined: same GTIDs and checksum
    assert read_only(exp["target"]) == 1
    assert (tmp_path / "drill.png").stat().st_size > 0
    # No library noise in the user's terminal (a stale SSH session reset after a restart).
    assert "Socket exception" not in done.stdout + done.stderr
