"""The steps of one experiment, in the order tasks.drill.experiment runs them.

1. `check_steady_state`: one VIP holder (the target), the app answering through the VIP.
2. `observe_baseline`: let the capture and the probes see the stack before the fault.
3. `inject`: the fault on the target.
4. `expect_takeover`: the backup holds the VIP and the app answers through it.
5. `restore`: put the target back (the experiment calls it in every case once injected).
6. `settle`: the VIP settles where the configuration says and the steady state comes back.

Each step writes what it measured into the Experiment and appends what did not hold to its
problems; only `check_steady_state` and `inject` decide whether the next steps run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from nornir.core import Nornir

from tasks.core.settings import ProjectError
from tasks.deploy.checks import check_round_robin
from tasks.drill.context import DrillContext, Roles
from tasks.drill.faults import Fault
from tasks.drill.observation import Observation
from tasks.drill.proxies import DrillError, read_vip_holders
from tasks.drill.record import Experiment
from tasks.drill.vrrp_analysis import expected_takeover

STEADY_STATE_TIMEOUT = 20.0  # after a restore, the stack must be healthy again within this
TAKEOVER_MARGIN_S = 8.0  # beyond the theoretical bound before a takeover counts as missed


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float | None:
    """Seconds until predicate() held (checked at least once), or None after timeout."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            return None
        time.sleep(step)


def steady_state(ctx: DrillContext, holder: str) -> list[str]:
    """Problems with the steady state (empty: healthy): `holder` alone holds the VIP, every
    web server answers through it."""
    return stack_problems(ctx.nr, ctx.vip, ctx.interface, ctx.bridge, ctx.web_fqdns, holder)


def stack_problems(proxies: Nornir, vip: str, interface: str, bridge: str | None,
                   web_fqdns: Sequence[str], holder: str | None) -> list[str]:
    """Problems with the stack (empty: healthy): `holder` alone (None: any one proxy) holds
    the VIP, every web server of `web_fqdns` answers through it."""
    problems = []
    holders, unreadable = read_vip_holders(proxies, vip, interface)
    if unreadable:
        problems.append(f"cannot read the VIP holders on: {', '.join(unreadable)}")
    if (holders != [holder]) if holder is not None else len(holders) != 1:
        problems.append(f"VIP {vip} held by {holders or 'nobody'}, expected "
                        f"exactly {holder or 'one proxy'}")
    seen = check_round_robin(vip, 2 * len(web_fqdns), bridge, timeout=2.0)
    if seen.errors:
        problems.append(f"requests through the VIP failed: {dict(Counter(seen.errors))}")
    missing = sorted(set(web_fqdns) - set(seen.order))
    if missing:
        problems.append(f"web servers not answering through the VIP: {', '.join(missing)}")
    return problems


def steady_state_within(ctx: DrillContext, holder: str, timeout: float) -> list[str]:
    """The steady state's problems still there after `timeout` (empty once it held)."""
    last: list[str] = []

    def healthy() -> bool:
        last[:] = steady_state(ctx, holder)
        return not last

    return [] if wait_until(healthy, timeout, step=0.5) is not None else last


def check_steady_state(ctx: DrillContext, roles: Roles, exp: Experiment) -> bool:
    """Step 1; a transient problem (a web server nginx still marks failed) may clear."""
    problems = steady_state_within(ctx, roles.target, ctx.options.settle_timeout)
    exp.problems += ["steady state not met, nothing injected: " + p for p in problems]
    return not problems


def observe_baseline(ctx: DrillContext) -> None:
    """Step 2: a few adverts of the MASTER and answered probes before the fault."""
    time.sleep(max(2.2 * ctx.advert_int, 1.0))


def inject(ctx: DrillContext, roles: Roles, fault: Fault, exp: Experiment) -> bool:
    """Step 3; False (and a problem) when the fault could not be injected."""
    ctx.progress(f"inject {fault.name} on {roles.target}: {fault.story}")
    exp.fault_time = time.time()
    exp.left_faulted = roles.target  # from now on the target must be restored
    try:
        fault.inject(ctx, roles.target)
    except (DrillError, ProjectError) as exc:
        exp.problems.append(f"inject {fault.name} on {roles.target} failed: {exc}")
        return False
    return True


def takeover_window(ctx: DrillContext, roles: Roles, fault: Fault) -> float:
    """How long the backup gets to take the VIP: the theoretical bound plus margins."""
    bound = expected_takeover(ctx.vrrp_version, ctx.advert_int, roles.backup_priority,
                              fault.bound_kind).bound_s
    return bound + TAKEOVER_MARGIN_S + fault.detect_s


def expect_takeover(ctx: DrillContext, roles: Roles, fault: Fault, exp: Experiment,
                    obs: Observation) -> None:
    """Step 4: the backup holds the VIP and the app answers through it after the fault."""
    window = takeover_window(ctx, roles, fault)
    backup_only = ctx.nr.filter(name=roles.backup)

    def backup_holds() -> bool:
        return read_vip_holders(backup_only, ctx.vip, ctx.interface)[0] == [roles.backup]

    exp.backup_holds_vip_after_s = wait_until(backup_holds, window)
    if exp.backup_holds_vip_after_s is None:
        exp.problems.append(f"{roles.backup} did not take the VIP within {window:.1f} s")
    else:
        ctx.progress(f"{roles.backup} holds the VIP "
                     f"{exp.backup_holds_vip_after_s:.2f} s after the fault")
    if wait_until(lambda: obs.answered_since(exp.fault_time + 0.05), window) is None:
        exp.problems.append("the app did not answer through the VIP after the fault")
    time.sleep(1.0)
    exp.holders_after_fault, _ = read_vip_holders(ctx.nr, ctx.vip, ctx.interface)


def restore(ctx: DrillContext, roles: Roles, fault: Fault, exp: Experiment) -> None:
    """Step 5, a no-op unless the target is left faulted."""
    if exp.left_faulted is None:
        return
    ctx.progress(f"restore {roles.target} ({fault.name})")
    exp.restore_time = time.time()
    try:
        fault.restore(ctx, roles.target)
    except Exception as exc:  # noqa: BLE001 - reported, and the drill fails
        exp.problems.append(f"restore of {roles.target} failed: {exc}")
        return
    exp.left_faulted = None


def settle(ctx: DrillContext, roles: Roles, exp: Experiment) -> None:
    """Step 6: the VIP settles (bounded) where the configuration says, then the stack is
    healthy again: back on the MASTER with preemption, else it stays on the backup."""
    expected = ctx.master or roles.backup

    def settled() -> bool:
        return read_vip_holders(ctx.nr, ctx.vip, ctx.interface)[0] == [expected]

    took = wait_until(settled, ctx.preempt_delay + 4 * ctx.advert_int + 10.0, step=0.1)
    if ctx.preempt:
        exp.preempted_back_after_s = took
    if took is None:
        exp.problems.append(f"after the restore the VIP did not settle on {expected}")
        return
    problems = steady_state_within(ctx, expected, STEADY_STATE_TIMEOUT)
    if problems:
        exp.problems.append(f"steady state not back {STEADY_STATE_TIMEOUT:.0f} s after the "
                            "restore: " + "; ".join(problems))
    else:
        exp.steady_after_restore_s = time.time() - (exp.restore_time or time.time())
        exp.holders_after_restore = [expected]  # what that steady-state check just read
    time.sleep(0.5)  # probes after the restore, for failed_after_restore


def read_holders_after_restore(ctx: DrillContext, exp: Experiment) -> None:
    """When the restore did not reach a verified steady state, read who holds the VIP."""
    if not exp.holders_after_restore:
        exp.holders_after_restore, _ = read_vip_holders(ctx.nr, ctx.vip, ctx.interface)
