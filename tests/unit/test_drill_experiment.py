"""The experiment's order of steps and its guarantees, with the network steps replaced by
recorders: a fault once injected is always restored (error, Ctrl-C), the observation always
stops, the roles are decided before each run and never change during one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tasks.drill import context, experiment, steps
from tasks.drill.context import DrillContext, DrillOptions, Roles, choose_roles
from tasks.drill.faults import Fault
from tasks.drill.proxies import DrillError
from tasks.drill.record import Experiment
from tasks.drill.report import interruption_line

ROLES = Roles("rp1", "rp2", 100)


class FakeNornir:
    def __init__(self) -> None:
        self.closed = 0

    def close_connections(self) -> None:
        self.closed += 1


def make_ctx(master: str | None = "rp1", priorities: dict[str, int] | None = None
             ) -> DrillContext:
    return DrillContext(
        nr=FakeNornir(), lab=None, vip="10.5.1.110", interface="eth0", bridge=None,  # type: ignore[arg-type]
        iface=None, web_fqdns=("web1.tp5.b2",), vrrp_version=2, advert_int=1.0,
        preempt=master is not None, preempt_delay=0.0, master=master,
        priorities=priorities or {"rp1": 150, "rp2": 100}, names={},
        options=DrillOptions(), progress=lambda _m: None)


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace the steps that touch the network; record the order of everything."""
    seen: list[str] = []

    class FakeObservation:
        def __init__(self, *_args: Any) -> None:
            self.records: list[Any] = []
            self.packets: list[Any] = []

        def __enter__(self) -> FakeObservation:
            seen.append("observe")
            return self

        def __exit__(self, *_exc: Any) -> None:
            seen.append("stop observing")

    def steady(_ctx: DrillContext, roles: Roles, exp: Experiment) -> bool:
        seen.append(f"steady {roles.target}")
        return "no steady state" not in seen

    def expect(_ctx: Any, roles: Roles, _f: Any, exp: Experiment, _obs: Any) -> None:
        seen.append("expect")
        exp.holders_after_fault = [roles.backup]

    monkeypatch.setattr(experiment, "Observation", FakeObservation)
    monkeypatch.setattr(steps, "check_steady_state", steady)
    monkeypatch.setattr(steps, "observe_baseline", lambda _ctx: seen.append("baseline"))
    monkeypatch.setattr(steps, "expect_takeover", expect)
    monkeypatch.setattr(steps, "settle", lambda *_a: seen.append("settle"))
    monkeypatch.setattr(steps, "read_holders_after_restore", lambda *_a: None)
    yield seen


def fault(calls: list[str], inject_raises: BaseException | None = None,
          restore_raises: BaseException | None = None) -> Fault:
    def inject(_ctx: DrillContext, target: str) -> None:
        calls.append(f"inject {target}")
        if inject_raises is not None:
            raise inject_raises

    def restore(_ctx: DrillContext, target: str) -> None:
        calls.append(f"restore {target}")
        if restore_raises is not None:
            raise restore_raises

    return Fault("test", "a test fault", "crash", False, inject, restore)


def test_the_steps_run_in_order(calls: list[str]) -> None:
    exp = experiment.run_experiment(make_ctx(), ROLES, fault(calls))
    assert calls == ["steady rp1", "observe", "baseline", "inject rp1", "expect",
                     "restore rp1", "settle", "stop observing"]
    assert exp.injected and exp.left_faulted is None and not exp.interrupted
    assert exp.probes is not None  # the verdict ran


def test_nothing_is_injected_without_the_steady_state(calls: list[str]) -> None:
    calls.append("no steady state")
    exp = experiment.run_experiment(make_ctx(), ROLES, fault(calls))
    assert calls[1:] == ["steady rp1"]
    assert not exp.injected and exp.probes is None


def test_ctrl_c_after_the_injection_still_restores_and_stops_observing(
    calls: list[str]
) -> None:
    exp = experiment.run_experiment(make_ctx(), ROLES, fault(calls, KeyboardInterrupt()))
    assert calls == ["steady rp1", "observe", "baseline", "inject rp1", "restore rp1",
                     "stop observing"]
    assert exp.interrupted and exp.left_faulted is None
    assert exp.problems == ["interrupted (Ctrl-C)"]


def test_a_failed_injection_is_a_problem_and_is_restored(calls: list[str]) -> None:
    exp = experiment.run_experiment(make_ctx(), ROLES, fault(calls, DrillError("refused")))
    assert calls == ["steady rp1", "observe", "baseline", "inject rp1", "restore rp1",
                     "stop observing"]
    assert exp.problems[0] == "inject test on rp1 failed: refused"
    assert not exp.interrupted and exp.left_faulted is None


def test_an_unexpected_error_still_restores_then_propagates(calls: list[str]) -> None:
    with pytest.raises(RuntimeError, match="bug"):
        experiment.run_experiment(make_ctx(), ROLES, fault(calls, RuntimeError("bug")))
    assert calls[-2:] == ["restore rp1", "stop observing"]


def test_a_failed_restore_leaves_the_target_named_and_skips_settling(
    calls: list[str]
) -> None:
    exp = experiment.run_experiment(make_ctx(), ROLES,
                                    fault(calls, restore_raises=DrillError("no ssh")))
    assert "settle" not in calls and calls[-1] == "stop observing"
    assert exp.left_faulted == "rp1"
    assert "restore of rp1 failed: no ssh" in exp.problems


def test_ctrl_c_during_the_restore_says_which_router_may_be_left_faulted(
    calls: list[str]
) -> None:
    ctx = make_ctx()
    run = experiment.run_drill(ctx, fault(calls, restore_raises=KeyboardInterrupt()),
                               repeat=3)
    assert calls[-1] == "stop observing"
    assert len(run.experiments) == 1 and run.interrupted and run.left_faulted == "rp1"
    assert "interrupted during the restore of rp1" in interruption_line(run)
    assert ctx.nr.closed == 1  # type: ignore[attr-defined]


def test_roles_are_decided_before_each_run(
    calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without preemption the VIP stays where a failover put it: each run faults the
    holder read before it; the roles of a run never change during it."""
    holders = iter([["rp1"], ["rp2"], ["rp1"]])
    monkeypatch.setattr(context, "read_vip_holders", lambda *_a: (next(holders), []))
    run = experiment.run_drill(make_ctx(master=None), fault(calls), repeat=3)
    assert [(e.target, e.backup) for e in run.experiments] == [
        ("rp1", "rp2"), ("rp2", "rp1"), ("rp1", "rp2")]
    assert [c for c in calls if c.startswith(("inject", "restore"))] == [
        "inject rp1", "restore rp1", "inject rp2", "restore rp2", "inject rp1", "restore rp1"]


def test_the_drill_stops_at_the_first_failed_run(calls: list[str]) -> None:
    run = experiment.run_drill(make_ctx(), fault(calls, DrillError("x")), repeat=5)
    assert len(run.experiments) == 1 and not run.ok and not run.interrupted


@pytest.mark.parametrize(("master", "target", "holders", "expected"), [
    ("rp1", None, None, Roles("rp1", "rp2", 100)),  # preemption: the inventory's MASTER
    ("rp1", "rp2", None, Roles("rp2", "rp1", 150)),  # --target wins
    (None, None, ["rp2"], Roles("rp2", "rp1", 150)),  # no preemption: the current holder
    (None, None, [], Roles("rp1", "rp2", 100)),  # nobody holds it: the highest priority
    (None, None, ["rp1", "rp2"], Roles("rp1", "rp2", 100)),  # two holders: same
])
def test_choose_roles(monkeypatch: pytest.MonkeyPatch, master: str | None,
                      target: str | None, holders: list[str] | None, expected: Roles) -> None:
    def read(*_a: Any) -> tuple[list[str], list[str]]:
        assert holders is not None, "the holders must not be read with a known MASTER"
        return holders, []

    monkeypatch.setattr(context, "read_vip_holders", read)
    assert choose_roles(make_ctx(master), target) == expected


def test_the_backup_is_the_highest_priority_of_the_others() -> None:
    ctx = make_ctx("rp3", {"rp1": 100, "rp2": 120, "rp3": 200})
    assert choose_roles(ctx) == Roles("rp3", "rp2", 120)
    assert choose_roles(ctx, "rp2") == Roles("rp2", "rp3", 200)
