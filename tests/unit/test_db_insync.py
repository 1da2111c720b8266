"""Which replica failover may promote: in sync when the tier was last seen healthy, not
restarted since, nothing of its own, the tier not degraded (tasks.db.insync, pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core import state
from tasks.db import insync
from tasks.db.facts import parse_slave_status
from tasks.db.insync import (
    last_in_sync,
    promotability,
    promotion_refusal,
    record_in_sync,
    restarted,
    sync_record,
)
from tasks.db.status import NodeStatus, SemiSync, cluster_status

ROW = {"Master_Host": "10.5.1.211", "Master_User": "repl", "Master_Port": 3306,
       "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 0,
       "Using_Gtid": "Slave_Pos", "Gtid_IO_Pos": "0-1-9"}
BOOT1, BOOT2 = 1_700_000_000, 1_700_000_100


def primary(**kw) -> NodeStatus:
    base = {"server_id": 1, "read_only": False, "gtid_binlog_pos": "0-1-9",
            "gtid_current_pos": "0-1-9", "booted": BOOT1,
            "semi": SemiSync(master_enabled=True, master_status=True, clients=1)}
    return NodeStatus("db1", "10.5.1.211", "primary", **{**base, **kw})


def replica(**kw) -> NodeStatus:
    base = {"server_id": 2, "read_only": True, "gtid_binlog_pos": "0-1-9",
            "gtid_slave_pos": "0-1-9", "gtid_current_pos": "0-1-9", "booted": BOOT2,
            "replica": parse_slave_status([ROW])}
    return NodeStatus("db2", "10.5.1.212", "replica", **{**base, **kw})


def record() -> dict:
    made = sync_record(cluster_status([primary(), replica()]), seen="2026-11-26T18:00:00+00:00")
    assert made is not None
    return made


def test_a_healthy_tier_is_recorded_with_boot_times_and_positions() -> None:
    made = record()
    assert made["primary"] == "db1"
    assert made["nodes"]["db2"] == {"booted": BOOT2, "position": "0-1-9", "role": "replica"}


@pytest.mark.parametrize("nodes", [
    [primary(semi=SemiSync(master_enabled=False)), replica()],  # degraded
    [primary(), replica(replica=parse_slave_status([{**ROW, "Slave_IO_Running": "No"}]))],
    [primary(), replica(booted=None)],  # boot time unknown
    [primary(read_only=True), replica()],  # no primary
])
def test_an_unhealthy_tier_is_never_recorded(nodes: list[NodeStatus]) -> None:
    assert sync_record(cluster_status(nodes)) is None


def test_the_record_is_written_and_read_back(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    assert last_in_sync() is None
    assert not record_in_sync(cluster_status([primary(semi=SemiSync()), replica()]))
    assert last_in_sync() is None
    assert record_in_sync(cluster_status([primary(), replica()]))
    assert last_in_sync()["nodes"]["db2"]["booted"] == BOOT2
    assert [p.name for p in tmp_path.iterdir()] == [insync.IN_SYNC_FILE]  # no leftover


def test_a_replica_in_sync_and_not_restarted_is_promotable() -> None:
    # It received more since (the primary wrote on): still the same boot.
    assert promotion_refusal(replica(gtid_current_pos="0-1-12", gtid_slave_pos="0-1-12",
                                     gtid_binlog_pos="0-1-12"), "db1", record(), None) == ""
    # The same boot read one second apart (whole-second readings) is no restart.
    assert promotion_refusal(replica(booted=BOOT2 + 1), "db1", record(), None) == ""


def test_a_replica_that_restarted_since_is_refused() -> None:
    why = promotion_refusal(replica(booted=BOOT2 + 40), "db1", record(), None)
    assert "db2 restarted since it was last seen in sync" in why and "relay log" in why
    assert restarted(None, BOOT2)


@pytest.mark.parametrize("node, dead, rec, degraded, expected", [
    (replica(), "db1", None, None, "never seen healthy"),
    (replica(), "db3", "record", None, "was not a replica of db3 in sync"),
    (replica(gtid_current_pos="0-1-5", gtid_slave_pos="0-1-5", gtid_binlog_pos="0-1-5"),
     "db1", "record", None, "holds less than when it was last seen"),
    (replica(gtid_binlog_pos="0-2-10"), "db1", "record", None, "transactions of its own"),
    (replica(), "db1", "record", {"since": "2026-11-26T18:05:00+00:00"}, "without semi-sync"),
    (replica(reachable=False, error="timed out"), "db1", "record", None, "does not answer"),
])
def test_refusals_say_why(node: NodeStatus, dead: str, rec: str | None,
                          degraded: dict | None, expected: str) -> None:
    why = promotion_refusal(node, dead, record() if rec else None, degraded)
    assert expected in why


def test_promotability_lists_every_replica_of_the_actual_or_last_primary() -> None:
    healthy = cluster_status([primary(), replica()])
    assert promotability(healthy, record(), None) == [("db2", "")]
    mark = {"since": "2026-11-26T18:05:00+00:00"}
    [(name, why)] = promotability(healthy, record(), mark)
    assert name == "db2" and "without semi-sync" in why
    dead = cluster_status([primary(reachable=False, error="down"), replica(booted=BOOT2 + 60)])
    [(name, why)] = promotability(dead, record(), None)
    assert name == "db2" and "restarted" in why
    assert promotability(dead, None, None) == []  # no primary known at all
