"""Pure parts of the database roles: exact GTID comparisons, the deploy's choice of the actual
primary, and the tier's problems (split brain, divergence, semi-sync off)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks.db import gtid
from tasks.db.facts import parse_slave_status
from tasks.db.status import (
    DURABILITY,
    ClusterStatus,
    NodeStatus,
    SemiSync,
    cluster_status,
    pending_catch_up,
)
from tasks.db.topology import DOWN, FRESH, UP, Probe, decide

ROW = {"Master_Host": "10.5.1.211", "Master_User": "repl", "Master_Port": 3306,
       "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 0,
       "Using_Gtid": "Slave_Pos", "Gtid_IO_Pos": "0-1-9"}


def test_gtid_parse_normalize_and_same() -> None:
    assert gtid.normalize("1-2-3, 0-1-12") == "0-1-12,1-2-3"
    assert gtid.same("0-1-12,1-2-3", "1-2-3,0-1-12")
    assert not gtid.same("0-1-12", "0-2-12")  # same sequence, other server: not the same
    assert gtid.parse("") == {} and gtid.normalize(None) == ""
    with pytest.raises(gtid.GtidError, match="not a GTID"):
        gtid.parse("0-1")


def test_gtid_contains_compares_server_ids_too() -> None:
    assert gtid.contains("0-1-12", "0-1-10")
    assert gtid.contains("0-1-12", "0-1-12")
    assert gtid.contains("0-1-12", "")
    assert not gtid.contains("0-1-12", "0-1-13")
    assert not gtid.contains("0-1-12", "0-2-12")  # a local write on the other node
    assert not gtid.contains("0-1-12", "1-1-1")   # a domain it does not have
    assert gtid.ahead("0-2-12", "0-1-12") == ["0-2-12 vs 0-1-12"]
    assert gtid.ahead("0-1-12", "0-1-12") == []


def _p(name: str, state: str = UP, **kw) -> Probe:
    return Probe(name, {"db1": "10.5.1.211", "db2": "10.5.1.212"}[name], state, **kw)


def test_one_writable_node_is_the_primary_whatever_the_inventory_says() -> None:
    probes = [_p("db1", binlog_pos="0-1-9", current_pos="0-1-9", source="10.5.1.212"),
              _p("db2", read_only=False, binlog_pos="0-2-10", current_pos="0-2-10")]
    decision = decide(probes, "db1")
    assert decision.primary == "db2" and not decision.open_primary and not decision.refusal
    assert "actual primary is db2" in decision.notes[0] and "not demoting" in decision.notes[0]
    assert decide([_p("db1", read_only=False), _p("db2", source="10.5.1.211")],
                  "db1").notes == []


def test_two_writable_nodes_are_refused() -> None:
    decision = decide([_p("db1", read_only=False), _p("db2", read_only=False)], "db1")
    assert decision.primary is None and "db1, db2 all accept writes" in decision.refusal


def test_a_writable_replica_does_not_make_a_second_primary() -> None:
    decision = decide([_p("db1", read_only=False),
                       _p("db2", read_only=False, source="10.5.1.211")], "db1")
    assert decision.primary == "db1" and not decision.refusal


def test_first_deploy_opens_the_inventory_primary() -> None:
    decision = decide([_p("db1"), _p("db2", FRESH)], "db1")
    assert (decision.primary, decision.open_primary, decision.open_refusal) == ("db1", True, "")


def test_a_restarted_primary_is_reopened_only_when_it_holds_what_its_replicas_hold() -> None:
    replica = _p("db2", source="10.5.1.211", current_pos="0-1-9")
    ok = decide([_p("db1", binlog_pos="0-1-9"), replica], "db1")
    assert ok.primary == "db1" and ok.open_primary and not ok.open_refusal
    # Its last transaction was truncated at restart but the replica had received it.
    behind = decide([_p("db1", binlog_pos="0-1-8"), replica], "db1")
    assert behind.primary == "db1" and "db2 holds transactions db1 lacks" in \
        behind.open_refusal
    assert "db2 holds everything db1 has: promote it with runbooks/db_failover.py failover " \
        "--to db2, then runbooks/db_failover.py rejoin db1" in behind.open_refusal
    # The replicas follow db2 (a failover happened): db2 is the one to reopen, not db1.
    moved = decide([_p("db1", source="10.5.1.212", current_pos="0-2-3"),
                    _p("db2", binlog_pos="0-2-3")], "db1")
    assert moved.primary == "db2" and moved.open_primary and "actual primary is db2" in \
        moved.notes[0]


def test_no_node_is_opened_while_another_does_not_answer() -> None:
    decision = decide([_p("db1", binlog_pos="0-1-9"), _p("db2", DOWN, error="timeout")], "db1")
    assert decision.primary == "db1" and "db2 does not answer" in decision.open_refusal


def _ok_primary(**kw) -> NodeStatus:
    base = {"server_id": 1, "read_only": False, "gtid_binlog_pos": "0-1-9",
            "semi": SemiSync(master_enabled=True, master_status=True, clients=1)}
    return NodeStatus("db1", "10.5.1.211", "primary", **{**base, **kw})


def _replica(**kw) -> NodeStatus:
    base = {"server_id": 2, "read_only": True, "gtid_current_pos": "0-1-9",
            "replica": parse_slave_status([ROW])}
    return NodeStatus("db2", "10.5.1.212", "replica", **{**base, **kw})


def test_split_brain_and_divergence_are_problems() -> None:
    two = cluster_status([_ok_primary(), _replica(replica=None, read_only=False)])
    assert two.problems[0] == "SPLIT BRAIN: db1, db2 all accept writes"
    diverged = cluster_status([_ok_primary(), _replica(gtid_current_pos="0-2-10")])
    assert any(p.startswith("db2: DIVERGED") and "re-clone db2" in p for p in diverged.problems)
    assert cluster_status([_ok_primary(), _replica()]).ok


def test_semi_sync_off_or_unacknowledged_is_shown() -> None:
    off = _ok_primary(semi=SemiSync(master_enabled=False))
    assert any("DEGRADED" in p for p in cluster_status([off, _replica()]).problems)
    alone = _ok_primary(semi=SemiSync(master_enabled=True, clients=0))
    assert any("no replica acknowledges" in p for p in cluster_status([alone]).problems)
    # A host's own deploy check leaves the tier-level semi-sync state out.
    assert cluster_status([off, _replica()], semi=False).ok


def test_roles_are_the_actual_ones_and_the_inventory_is_noted() -> None:
    swapped = [NodeStatus("db1", "10.5.1.211", "primary", server_id=1, read_only=True,
                          gtid_current_pos="0-2-4",
                          replica=parse_slave_status([{**ROW, "Master_Host": "10.5.1.212"}])),
               NodeStatus("db2", "10.5.1.212", "replica", server_id=2, read_only=False,
                          gtid_binlog_pos="0-2-4",
                          semi=SemiSync(master_enabled=True, master_status=True, clients=1))]
    cluster = cluster_status(swapped)
    assert cluster.ok, cluster.problems
    assert cluster.primary == "db2" and [n.role for n in swapped] == ["replica", "primary"]
    assert "actual primary is db2" in cluster.notes[0]
    fenced = NodeStatus("db1", "10.5.1.211", "primary", server_id=1, read_only=True)
    assert fenced.role == "read-only"
    assert any("rejoin db1" in p for p in cluster_status([fenced]).problems)


def test_a_live_setting_that_differs_is_a_problem() -> None:
    settings = dict(DURABILITY, sync_binlog="0")
    problems = cluster_status([_ok_primary(settings=settings)]).problems
    assert problems == ["db1: sync_binlog is 0, the settings want 1"]


def _own(cluster: ClusterStatus, name: str) -> list[str]:
    return [p for p in cluster.problems if p.startswith(f"{name}: ")]


def test_a_lagging_replica_is_waited_for_before_its_lag_is_a_problem() -> None:
    behind = _replica(gtid_current_pos="0-1-7",
                      replica=parse_slave_status([{**ROW, "Seconds_Behind_Master": 1}]))
    cluster = cluster_status([_ok_primary(gtid_binlog_pos="0-1-9"), behind], semi=False)
    problems = _own(cluster, "db2")
    assert problems == ["db2: 1 s behind the primary"]
    # Lag alone, not caught up: wait for the primary's position; the problem stands.
    assert pending_catch_up(cluster, "db2", problems) == (problems, "0-1-9")
    # Caught up when read (Seconds_Behind_Master still 1): no lag problem, nothing to wait.
    caught = cluster_status([_ok_primary(gtid_binlog_pos="0-1-9"),
                             replace(behind, gtid_current_pos="0-1-9")], semi=False)
    assert pending_catch_up(caught, "db2", _own(caught, "db2")) == ([], None)
    # Caught up by sequence but from another server: diverged, not caught up.
    forked = cluster_status([_ok_primary(gtid_binlog_pos="0-1-9"),
                             replace(behind, gtid_current_pos="0-2-9")], semi=False)
    assert pending_catch_up(forked, "db2", _own(forked, "db2"))[1] is None
    assert "db2: 1 s behind the primary" in pending_catch_up(forked, "db2",
                                                             _own(forked, "db2"))[0]


def test_lag_with_another_problem_is_not_waited_for() -> None:
    stopped = _replica(gtid_current_pos="0-1-7", replica=parse_slave_status(
        [{**ROW, "Seconds_Behind_Master": 3, "Last_SQL_Errno": 1062,
                "Last_SQL_Error": "duplicate key"}]))
    cluster = cluster_status([_ok_primary(gtid_binlog_pos="0-1-9"), stopped], semi=False)
    problems = _own(cluster, "db2")
    assert "db2: 3 s behind the primary" in problems
    assert "db2: SQL thread error 1062: duplicate key" in problems
    assert pending_catch_up(cluster, "db2", problems) == (problems, None)
    # No lag, no primary, or the primary itself: nothing to wait for, problems unchanged.
    healthy = cluster_status([_ok_primary(), _replica()], semi=False)
    assert pending_catch_up(healthy, "db2", []) == ([], None)
    assert pending_catch_up(healthy, "db1", ["x"]) == (["x"], None)
    orphan = cluster_status([stopped], require_primary=False, semi=False)
    assert pending_catch_up(orphan, "db2", ["y"]) == (["y"], None)
