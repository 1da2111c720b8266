"""The steps of one web experiment, in the order tasks.drill.web_experiment runs them.

1. `check_steady_state`: one proxy holds the VIP, every web server answers through it.
2. `observe_baseline`: the probes see the stack before the fault.
3. `inject`: the fault on the target web server.
4. `hold`: the fault lasts one failed try (the longest proxy timeout) plus one fail_timeout:
   NGINX takes the server out, and (crash, stop) tries it once more while it is faulted. A
   hang's tries end one read timeout late, and each failure restarts fail_timeout, so its
   trial would come after the restore.
5. `restore`: put the target back (the experiment calls it in every case once injected).
6. `settle`: the target answers client requests again, the stack is healthy again.
7. `read_access_logs`: what NGINX logged during the experiment, from every proxy.
"""

from __future__ import annotations

import time

from tasks.core.settings import ProjectError
from tasks.drill.nginx_log import AccessLine, parse_log
from tasks.drill.observation import Observation
from tasks.drill.proxies import DrillError, sh
from tasks.drill.steps import STEADY_STATE_TIMEOUT, stack_problems, wait_until
from tasks.drill.web_context import WebDrillContext
from tasks.drill.web_faults import WebFault
from tasks.drill.web_record import WebExperiment

BASELINE_S = 2.0  # probes before the fault
AFTER_S = 3.0  # probes once the stack is healthy again after the restore
HOLD_MARGIN_S = 1.0  # the fault lasts try_bound + fail_timeout + this
RETURN_MARGIN_S = 10.0  # beyond fail_timeout + try_bound before "not back in rotation"
RESTORE_ALLOWANCE_S = 60.0  # a crashed node's reboot, for the probe loop's own limit


def hold_s(ctx: WebDrillContext) -> float:
    return ctx.nginx.try_bound_s + ctx.nginx.fail_timeout_s + HOLD_MARGIN_S


def return_window_s(ctx: WebDrillContext) -> float:
    """How long the restored target gets to answer a client again: NGINX skips it up to
    fail_timeout after its last failed try (which may end up to try_bound later)."""
    return ctx.nginx.fail_timeout_s + ctx.nginx.try_bound_s + RETURN_MARGIN_S


def observation_s(ctx: WebDrillContext) -> float:
    """An upper bound of one experiment's observation, for the probe loop's own limit."""
    return (BASELINE_S + hold_s(ctx) + RESTORE_ALLOWANCE_S + return_window_s(ctx)
            + STEADY_STATE_TIMEOUT + AFTER_S)


def problems_within(ctx: WebDrillContext, timeout: float) -> list[str]:
    """The stack's problems still there after `timeout` (empty once it was healthy)."""
    last: list[str] = []

    def healthy() -> bool:
        last[:] = stack_problems(ctx.proxies, ctx.vip, ctx.interface, ctx.bridge,
                                 ctx.web_fqdns, ctx.master)
        return not last

    return [] if wait_until(healthy, timeout, step=0.5) is not None else last


def check_steady_state(ctx: WebDrillContext, exp: WebExperiment) -> bool:
    """Step 1 (a web server NGINX still marks failed may need up to fail_timeout)."""
    problems = problems_within(ctx, ctx.options.settle_timeout)
    exp.problems += ["steady state not met, nothing injected: " + p for p in problems]
    return not problems


def observe_baseline() -> None:
    """Step 2."""
    time.sleep(BASELINE_S)


def inject(ctx: WebDrillContext, fault: WebFault, exp: WebExperiment) -> bool:
    """Step 3; False (and a problem) when the fault could not be injected."""
    ctx.progress(f"inject {fault.name} on {ctx.target}: {fault.story}")
    exp.fault_time = time.time()
    exp.left_faulted = ctx.target
    try:
        fault.inject(ctx, ctx.target)
    except (DrillError, ProjectError) as exc:
        exp.problems.append(f"inject {fault.name} on {ctx.target} failed: {exc}")
        return False
    return True


def hold(ctx: WebDrillContext) -> None:
    """Step 4."""
    ctx.progress(f"hold the fault {hold_s(ctx):.1f} s (longest proxy timeout "
                 f"{ctx.nginx.try_bound_s:g} s + fail_timeout {ctx.nginx.fail_timeout_s:g} s "
                 f"+ {HOLD_MARGIN_S:g} s)")
    time.sleep(hold_s(ctx))


def restore(ctx: WebDrillContext, fault: WebFault, exp: WebExperiment) -> None:
    """Step 5, a no-op unless the target is left faulted."""
    if exp.left_faulted is None:
        return
    ctx.progress(f"restore {ctx.target} ({fault.name})")
    exp.restore_time = time.time()
    try:
        fault.restore(ctx, ctx.target)
    except Exception as exc:  # noqa: BLE001 - reported, and the drill fails
        exp.problems.append(f"restore of {ctx.target} failed: {exc}")
        return
    exp.restored_time = time.time()
    exp.left_faulted = None


def settle(ctx: WebDrillContext, exp: WebExperiment, obs: Observation) -> None:
    """Step 6: the target answers a client again (bounded), then the stack is healthy."""
    since = exp.restored_time or time.time()
    window = return_window_s(ctx)
    took = wait_until(lambda: obs.served_by_since(ctx.target_fqdn, since), window, step=0.1)
    if took is None:
        exp.problems.append(f"{ctx.target} answered no client within {window:.0f} s of the "
                            "restore")
        return
    ctx.progress(f"{ctx.target} answers clients again {took:.2f} s after the restore")
    problems = problems_within(ctx, STEADY_STATE_TIMEOUT)
    if problems:
        exp.problems.append(f"steady state not back {STEADY_STATE_TIMEOUT:.0f} s after the "
                            "restore: " + "; ".join(problems))
    else:
        exp.steady_after_restore_s = time.time() - since
    time.sleep(AFTER_S)


def read_access_logs(ctx: WebDrillContext, since: float, exp: WebExperiment
                     ) -> tuple[list[AccessLine] | None, int]:
    """Step 7: every proxy's requests that ended after `since`, merged by start time, and
    the lines not understood; None (and a problem) when no proxy's log could be read."""
    lines: list[AccessLine] = []
    unparsed, read = 0, 0
    command = f"awk -v s={since:.3f} '$1 >= s' {ctx.access_log}"
    for name in sorted(ctx.proxies.inventory.hosts):
        try:
            text = sh(ctx.proxies, name, command)
        except DrillError as exc:
            exp.problems.append(f"cannot read the access log {ctx.access_log}: {exc}")
            continue
        parsed, bad = parse_log(text, name)
        lines, unparsed, read = lines + parsed, unparsed + bad, read + 1
    if not read:
        return None, 0
    return sorted(lines, key=lambda a: a.start), unparsed
