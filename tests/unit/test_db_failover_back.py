"""A failover whose old primary is back: allowed only when it is fenced (read-only) and holds
nothing the target lacks (its restart dropped an in-doubt transaction the replica holds: the
deploy cannot reopen it, and without this no command could reopen the tier)."""

from __future__ import annotations

import pytest

from tasks.db import failover as failover_module
from tasks.db.facts import parse_slave_status
from tasks.db.failover import _check_back_and_behind, _primary_for
from tasks.db.status import NodeStatus
from tasks.db.tier import Refused

BROKEN_IO = {"Master_Host": "10.5.1.211", "Slave_IO_Running": "No", "Slave_SQL_Running": "Yes",
             "Last_IO_Errno": 1236, "Using_Gtid": "Slave_Pos", "Gtid_IO_Pos": "0-1-75",
             "Last_IO_Error": "Got fatal error 1236 from master: not in the master's binlog"}


def old(**kw) -> NodeStatus:
    base = {"server_id": 1, "read_only": True, "gtid_binlog_pos": "0-1-74",
            "gtid_current_pos": "0-1-74"}
    return NodeStatus("db1", "10.5.1.211", "primary", **{**base, **kw})


def target(**kw) -> NodeStatus:
    base = {"server_id": 2, "read_only": True, "gtid_binlog_pos": "0-1-75",
            "gtid_slave_pos": "0-1-75", "gtid_current_pos": "0-1-75",
            "replica": parse_slave_status([BROKEN_IO])}
    return NodeStatus("db2", "10.5.1.212", "replica", **{**base, **kw})


def test_a_fenced_old_primary_that_lost_its_last_transaction_lets_the_replica_be_promoted(
) -> None:
    _check_back_and_behind(old(), target())  # no refusal
    _check_back_and_behind(old(gtid_binlog_pos="0-1-75"), target())  # equal: nothing lost


@pytest.mark.parametrize("old_kw, target_kw, why", [
    ({"read_only": False}, {}, "db1 answers and accepts writes: this is no failover"),
    ({"gtid_binlog_pos": "0-1-76"}, {}, "holds transactions db2 lacks (0-1-76 vs 0-1-75)"),
    ({"gtid_binlog_pos": "0-3-75"}, {}, "holds transactions db2 lacks"),
    ({}, {"gtid_binlog_pos": "0-2-80"},
     "db2 has transactions of its own that db1 never had (0-2-80 vs 0-1-75): it diverged"),
])
def test_otherwise_the_failover_is_refused_with_what_to_run(old_kw: dict, target_kw: dict,
                                                             why: str) -> None:
    with pytest.raises(Refused) as refused:
        _check_back_and_behind(old(**old_kw), target(**target_kw))
    assert why in str(refused.value)


class Statuses:
    """A tier whose statuses come from a list, one reading per call (the last repeats)."""

    def __init__(self, *readings: dict[str, NodeStatus]) -> None:
        self.readings = list(readings)
        self.calls = 0

    def statuses(self) -> dict[str, NodeStatus]:
        self.calls += 1
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


def busy(name: str = "db1") -> NodeStatus:
    return NodeStatus(name, "10.5.1.211", "primary", reachable=False, error="timed out")


def writable() -> NodeStatus:
    return NodeStatus("db1", "10.5.1.211", "primary", server_id=1, read_only=False,
                      gtid_binlog_pos="0-1-9")


def test_rejoin_asks_again_for_a_primary_it_could_not_read(monkeypatch: pytest.MonkeyPatch,
                                                           ) -> None:
    monkeypatch.setattr(failover_module, "POLL_PATIENT", 0.0)
    back = target(read_only=True)
    tier = Statuses({"db1": busy(), "db2": back}, {"db1": busy(), "db2": back},
                    {"db1": writable(), "db2": back})
    nodes, primary = _primary_for(tier, "db2", wait=60)  # type: ignore[arg-type]
    assert primary.name == "db1" and tier.calls == 3 and nodes["db2"] is back


def test_rejoin_refuses_naming_the_node_it_could_not_read(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    monkeypatch.setattr(failover_module, "POLL_PATIENT", 0.0)
    tier = Statuses({"db1": busy(), "db2": target()})
    with pytest.raises(Refused) as refused:
        _primary_for(tier, "db2", wait=0)  # type: ignore[arg-type]
    assert "no node accepts writes (could not be read: db1 (timed out))" in str(refused.value)
    tier = Statuses({"db1": old(), "db2": target()})  # read, and read-only: nothing to wait for
    with pytest.raises(Refused, match=r"no node accepts writes: run"):
        _primary_for(tier, "db2", wait=60)  # type: ignore[arg-type]
    assert tier.calls == 1
