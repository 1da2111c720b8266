"""The failover watcher's decisions, with a fake db tier and a fake clock (tasks.db.watch)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks.core import state
from tasks.db import watch
from tasks.db.status import NodeStatus
from tasks.db.tier import Refused, Steps
from tasks.db.watch import (
    CONFIRMED,
    HEALTHY,
    SUSPECT,
    UNCONFIRMABLE,
    Detector,
    ReplicaView,
    Watcher,
    WatchSettings,
    watch_lock,
)

SETTINGS = WatchSettings(interval=0.2, probe_timeout=0.5, misses=3, silence=2.0)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(state, "STATE_DIR", tmp_path)
    return tmp_path


def hearing(n: int) -> ReplicaView:
    return ReplicaView("Yes", (n, "tp5-bin.000001", 100 + n))


def test_a_few_misses_make_a_suspicion_and_an_answer_clears_it() -> None:
    d = Detector(SETTINGS)
    d.replica(0.0, hearing(1))
    for t in (0.2, 0.4):
        d.primary(t, False)
        assert d.state(t) == HEALTHY
    d.primary(0.6, False)
    assert d.state(0.6) == SUSPECT
    d.primary(0.8, True)
    assert d.state(0.8) == HEALTHY and d.missed == 0


def test_a_primary_the_replica_still_hears_is_never_confirmed_dead() -> None:
    d = Detector(SETTINGS)
    for i in range(100):  # 20 s of unanswered probes, the replica hearing all along
        t = i * 0.2
        d.primary(t, False)
        d.replica(t, hearing(i))
        assert d.state(t) in (HEALTHY, SUSPECT)
    assert d.state(20.0) == SUSPECT


def test_a_silent_replica_confirms_after_the_silence_bound() -> None:
    d = Detector(SETTINGS)
    d.replica(0.0, hearing(7))
    for t in (0.5, 1.0, 1.5):
        d.primary(t, False)
        d.replica(t, hearing(7))  # nothing new: no event, no heartbeat
    assert d.state(1.9) == SUSPECT
    assert d.state(2.0) == CONFIRMED


def test_an_io_thread_down_confirms_at_once() -> None:
    d = Detector(SETTINGS)
    for t in (0.1, 0.2, 0.3):
        d.primary(t, False)
        d.replica(t, ReplicaView("Connecting", (1,)))
    assert d.state(0.3) == CONFIRMED


def test_a_replica_that_cannot_be_asked_never_confirms() -> None:
    d = Detector(SETTINGS)
    for t in (0.1, 0.2, 0.3):
        d.primary(t, False)
        d.replica(t, None)
    assert d.state(10.0) == UNCONFIRMABLE


@dataclass
class FakeTier:
    """A primary that dies at `dies_at` (fake seconds); a replica that stops hearing it at
    `replica_loses_at` (None: it keeps hearing it: a partition of the controller alone)."""

    clock: list[float]
    dies_at: float = 1.0
    replica_loses_at: float | None = 1.0
    refuse: str | None = None
    comes_back_at: float | None = None
    calls: list[str] = field(default_factory=list)
    io: str = "Yes"

    def now(self) -> float:
        return self.clock[0]

    def roles(self) -> tuple[str, str]:
        if "promoted" in self.calls:
            raise Refused("db2 has no replica")
        return "db1", "db2"

    def primary_answers(self, name: str) -> bool:
        assert name == "db1"
        back = self.comes_back_at is not None and self.now() >= self.comes_back_at
        return self.now() < self.dies_at or back

    def replica_view(self, name: str) -> ReplicaView:
        lost = self.replica_loses_at is not None and self.now() >= self.replica_loses_at
        return ReplicaView(self.io, (0,) if lost else (self.now(),))

    def seen_healthy(self) -> None:
        self.calls.append(f"seen_healthy {self.now():.1f}")

    def stop_io(self, name: str) -> bool:
        self.calls.append(f"stop_io {name}")
        self.io = "No"
        return True

    def start_io(self, name: str) -> None:
        self.calls.append(f"start_io {name}")
        self.io = "Yes"

    def failover(self, to: str, steps: Steps) -> None:
        self.calls.append(f"failover {to}")
        self.clock[0] += 0.1  # it takes a while
        if self.refuse:
            raise Refused(self.refuse)
        self.calls.append("promoted")

    def close(self) -> None:
        self.calls.append("close")


class FakeStop(threading.Event):
    """A stop event whose wait() advances the fake clock instead of sleeping."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        self.clock[0] += timeout or 0.0
        return self.is_set()


def actions(tier: FakeTier) -> list[str]:
    """What the watcher did to the nodes (its in-sync records left out)."""
    return [c for c in tier.calls if not c.startswith("seen_healthy")]


def run_watcher(tier: FakeTier, duration: float = 30.0) -> Watcher:
    w = Watcher(tier, SETTINGS, Steps(out=lambda _l: None), clock=tier.now)
    w.run(FakeStop(tier.clock), duration, max_failovers=1)
    return w


def kinds(w: Watcher) -> list[str]:
    return [e.kind for e in w.events]


def test_a_dead_primary_is_failed_over_once_confirmed() -> None:
    tier = FakeTier([0.0])
    w = run_watcher(tier)
    assert w.failovers == 1
    assert actions(tier) == ["stop_io db2", "failover db2", "promoted"]
    assert kinds(w) == ["watching", "suspected", "confirmed", "promoting", "io-stopped",
                        "promoted"]
    at = {e.kind: e.at for e in w.events}
    assert at["suspected"] == pytest.approx(1.4)  # third unanswered probe after 1.0
    assert at["confirmed"] >= 1.0 + SETTINGS.silence
    assert watch.read_journal() is None  # done: the journal is cleared


def test_a_primary_the_replica_hears_is_not_failed_over() -> None:
    tier = FakeTier([0.0], replica_loses_at=None)
    w = run_watcher(tier, duration=10.0)
    assert w.failovers == 0 and actions(tier) == []
    assert "confirmed" not in kinds(w) and "suspected" in kinds(w)


def test_a_refused_failover_is_logged_and_the_replica_resumes_if_the_primary_is_back() -> None:
    tier = FakeTier([0.0], refuse="db1 answers the controller", comes_back_at=3.05)
    w = run_watcher(tier, duration=3.2)
    assert "refused" in kinds(w) and w.failovers == 0
    assert actions(tier)[:3] == ["stop_io db2", "failover db2", "start_io db2"]
    assert watch.read_journal() is None


def test_a_refused_failover_never_restarts_the_io_thread_of_a_lost_primary() -> None:
    tier = FakeTier([0.0], refuse="degraded")
    w = run_watcher(tier, duration=3.2)
    assert "refused" in kinds(w)
    assert "start_io db2" not in tier.calls  # its relay log is kept


def test_the_journal_is_written_before_the_failover(state_dir: Path) -> None:
    seen: list[dict | None] = []
    tier = FakeTier([0.0])
    tier.failover = lambda to, steps: seen.append(watch.read_journal())  # type: ignore[method-assign]
    run_watcher(tier)
    assert seen and seen[0] is not None and seen[0]["dead"] == "db1" and seen[0]["to"] == "db2"


def test_the_watcher_stops_at_its_duration_without_a_fault() -> None:
    tier = FakeTier([0.0], dies_at=1e9)
    w = run_watcher(tier, duration=5.0)
    assert w.failovers == 0 and kinds(w) == ["watching"]
    assert tier.now() == pytest.approx(5.0, abs=0.3)


def test_a_second_watcher_waits_for_the_lock() -> None:
    first_in, release = threading.Event(), threading.Event()
    said: list[str] = []

    def first() -> None:
        with watch_lock(threading.Event(), said.append) as got:
            assert got
            first_in.set()
            release.wait(5)

    holder = threading.Thread(target=first)
    holder.start()
    first_in.wait(5)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with watch_lock(stop, said.append, poll=0.05) as got:
        assert got is False  # still waiting when stopped
    assert any("another watcher holds" in s for s in said)
    release.set()
    holder.join(5)
    with watch_lock(threading.Event(), said.append) as got:
        assert got  # free again


@dataclass
class JournalTier:
    """A db tier as `resume_failover` reads it: statuses, and the SSH tasks it runs."""

    nodes: dict[str, NodeStatus]
    ran: list[str] = field(default_factory=list)

    def statuses(self) -> dict[str, NodeStatus]:
        return self.nodes

    def host(self, name: str) -> dict[str, str]:
        return {"app_name": "app_nulle"}

    def on(self, name: str, task: object, **kwargs: object) -> str:
        self.ran.append(f"{name}: {getattr(task, '__name__', task)}")
        return "1\n"


def node(name: str, *, reachable: bool = True, read_only: bool = True) -> NodeStatus:
    return NodeStatus(name, f"10.0.0.{name[-1]}", "replica", reachable=reachable,
                      read_only=read_only, gtid_current_pos="0-1-44")


def test_no_journal_means_nothing_to_resume() -> None:
    assert watch.resume_failover(JournalTier({}), Steps(out=lambda _l: None)) is None


def test_a_finished_failover_only_clears_the_journal() -> None:
    watch.write_journal("db1", "db2")
    tier = JournalTier({"db1": node("db1", reachable=False),
                        "db2": node("db2", read_only=False)})
    done = watch.resume_failover(tier, Steps(out=lambda _l: None))
    assert done == "nothing to do: db2 accepts writes" and tier.ran == []
    assert watch.read_journal() is None


def test_a_watcher_that_died_after_the_reset_is_finished_epoch_then_open() -> None:
    watch.write_journal("db1", "db2")
    tier = JournalTier({"db1": node("db1", reachable=False), "db2": node("db2")})
    done = watch.resume_failover(tier, Steps(out=lambda _l: None))
    assert done == "finished: db2 is the primary"
    assert tier.ran == ["db2: root_sql", "db2: open_writes"]
    assert watch.read_journal() is None


def test_the_old_primary_answering_again_is_refused_and_the_journal_stays() -> None:
    watch.write_journal("db1", "db2")
    tier = JournalTier({"db1": node("db1"), "db2": node("db2")})
    with pytest.raises(Refused, match="db1 answers again"):
        watch.resume_failover(tier, Steps(out=lambda _l: None))
    assert tier.ran == [] and watch.read_journal() is not None


def test_while_healthy_the_watcher_records_the_tier_in_sync_every_few_seconds() -> None:
    """A replica that restarted and caught up is promotable again only once seen in sync:
    the watcher records it (every record_every s while healthy, never once suspected)."""
    tier = FakeTier([0.0], dies_at=12.0)
    run_watcher(tier, duration=30.0)
    seen = [float(c.split()[1]) for c in tier.calls if c.startswith("seen_healthy")]
    assert len(seen) == 3 and seen[0] == 0.0  # at 0, about 5 and about 10 (fake seconds)
    assert all(5.0 <= b - a < 5.0 + 2 * SETTINGS.interval for a, b in zip(seen, seen[1:],
                                                                          strict=False))
    assert actions(tier)[:2] == ["stop_io db2", "failover db2"]
