"""The failover drill: experiments made of steps (tasks.drill.steps), run in order.

`run_experiment` runs one experiment on roles decided beforehand and always restores the
target once a fault was injected (also on error or Ctrl-C); the observation (probes,
sniffer) always stops. `run_drill` repeats it, deciding the roles before each run, keeps
the evidence and stops at the first failed run.
"""

from __future__ import annotations

from collections.abc import Callable

from tasks.drill import steps
from tasks.drill.context import DrillContext, Roles, choose_roles
from tasks.drill.evidence import EvidencePaths, save_evidence
from tasks.drill.faults import Fault
from tasks.drill.observation import Observation
from tasks.drill.record import DrillRun, Experiment, repeat_experiments
from tasks.drill.verdict import conclude


def run_experiment(ctx: DrillContext, roles: Roles, fault: Fault) -> Experiment:
    """Steady state, observe, inject `fault` on roles.target, expect, restore, settle,
    then the verdict. Ctrl-C ends the experiment (restored) with `interrupted` set."""
    exp = Experiment(fault.name, roles.target, roles.backup)
    try:
        if not steps.check_steady_state(ctx, roles, exp):
            return exp
        _fault_under_observation(ctx, roles, fault, exp)
        if exp.injected:
            steps.read_holders_after_restore(ctx, exp)
            conclude(exp, ctx.vip, ctx.names, captured=ctx.options.capture)
    except KeyboardInterrupt:
        exp.interrupted = True
        exp.problems.append("interrupted (Ctrl-C)" + (
            f"; the restore of {exp.left_faulted} did not complete" if exp.left_faulted else ""))
    return exp


def _fault_under_observation(ctx: DrillContext, roles: Roles, fault: Fault,
                             exp: Experiment) -> None:
    sniff_on = ctx.iface if ctx.options.capture else None
    with Observation(ctx.vip, ctx.options.probe_interval, ctx.options.probe_timeout,
                     sniff_on) as obs:
        steps.observe_baseline(ctx)
        try:
            if steps.inject(ctx, roles, fault, exp):
                steps.expect_takeover(ctx, roles, fault, exp, obs)
        finally:
            steps.restore(ctx, roles, fault, exp)
        if exp.injected and not exp.problems:
            steps.settle(ctx, roles, exp)
    exp.records, exp.packets = obs.records, obs.packets


def run_drill(ctx: DrillContext, fault: Fault, repeat: int = 1, target: str | None = None,
              evidence: EvidencePaths | None = None,
              on_experiment: Callable[[int, Experiment], None] = lambda _n, _e: None,
              ) -> DrillRun:
    """Run up to `repeat` experiments (stopping at the first that fails or is interrupted);
    `on_experiment(number, exp)` is called after each, its evidence saved."""
    def one(number: int) -> Experiment:
        roles = choose_roles(ctx, target)
        ctx.progress(f"run {number}/{repeat}: {fault.name} on {roles.target}; "
                     f"{roles.backup} (priority {roles.backup_priority}) should take the VIP")
        exp = run_experiment(ctx, roles, fault)
        if evidence is not None and exp.capture is not None:
            save_evidence(exp, *evidence.for_run(fault.name, number, repeat), ctx.names)
        return exp

    return repeat_experiments(DrillRun(fault.name, repeat), one, on_experiment,
                              ctx.nr.close_connections)
