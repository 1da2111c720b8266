"""The failover's last step: a promoted node opens with semi-sync on (its writes wait for a
replica), or degraded when asked (the watcher's default): semi-sync off, and the decision
recorded before the node takes a write, so no replica is promoted from it afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tasks.core import state
from tasks.core.settings import REPO_ROOT
from tasks.db.degraded import degraded_mark
from tasks.db.failover import open_promoted
from tasks.db.tier import Steps
from tasks.db.watch import WatchSettings


class FakeTier:
    """Records the Nornir tasks run on each node, and whether the mark existed then."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any], bool]] = []

    def on(self, name: str, task: Any, **kwargs: Any) -> str:
        self.calls.append((name, task.__name__, kwargs, degraded_mark() is not None))
        return ""


@pytest.fixture(autouse=True)
def state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    return tmp_path


def test_a_promotion_that_waits_for_a_replica_keeps_semi_sync_and_records_nothing() -> None:
    tier, said = FakeTier(), []
    open_promoted(tier, "db2", "db1", "0-1-40", Steps(out=said.append),  # type: ignore[arg-type]
                  degrade=False)
    assert tier.calls == [("db2", "open_writes", {"semi_sync": True}, False)]
    assert degraded_mark() is None
    assert any("rejoin db1, or accept writes without a copy" in s for s in said)


def test_a_degraded_promotion_is_recorded_before_the_node_opens() -> None:
    tier, said = FakeTier(), []
    open_promoted(tier, "db2", "db1", "0-1-40", Steps(out=said.append),  # type: ignore[arg-type]
                  degrade=True)
    assert tier.calls == [("db2", "open_writes", {"semi_sync": False}, True)]
    mark = degraded_mark()
    assert mark is not None
    assert (mark["primary"], mark["position"], mark["why"]) == ("db2", "0-1-40",
                                                                "failover: db1 lost")
    assert any("DEGRADED" in s and "rejoin db1" in s for s in said)


def test_the_watcher_degrades_by_default_and_the_runbook_can_say_otherwise() -> None:
    assert WatchSettings().degrade is True
    helps = {cmd: subprocess.run([sys.executable, "runbooks/db_failover.py", cmd, "--help"],
                                 cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                                 check=True).stdout for cmd in ("watch", "failover")}
    assert "--wait-for-replica" in helps["watch"] and "--degrade" in helps["failover"]
