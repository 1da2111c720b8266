"""The web-tier drill: experiments made of steps (tasks.drill.web_steps), run in order.

`run_web_experiment` always restores the target once a fault was injected (also on error or
Ctrl-C) and always stops the probes; then it reads the proxies' logs and concludes.
`run_web_drill` repeats it, draws each timeline and stops at the first failed run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tasks.drill import web_steps as steps
from tasks.drill.observation import Observation
from tasks.drill.record import repeat_experiments
from tasks.drill.web_context import WebDrillContext
from tasks.drill.web_faults import WebFault
from tasks.drill.web_record import WebDrillRun, WebExperiment
from tasks.drill.web_verdict import conclude_web

LOG_SLACK_S = 1.0  # read the log lines that ended this long before the observation began
SESSION_CLIENTS = 3  # cookie-jar clients beside the probes: do their sessions survive?


def run_web_experiment(ctx: WebDrillContext, fault: WebFault) -> WebExperiment:
    """Steady state, observe, inject `fault` on ctx.target, hold, restore, settle, read the
    proxies' logs, then the verdict. Ctrl-C ends it (restored) with `interrupted` set."""
    exp = WebExperiment(fault.name, ctx.target, ctx.nginx, ctx.options.probe_timeout,
                        session_store=ctx.session_store)
    try:
        if not steps.check_steady_state(ctx, exp):
            return exp
        began = time.time()
        _fault_under_observation(ctx, fault, exp)
        if exp.injected:
            lines, unparsed = steps.read_access_logs(ctx, began - LOG_SLACK_S, exp)
            conclude_web(exp, lines, ctx.target_server, ctx.target_fqdn, unparsed)
    except KeyboardInterrupt:
        exp.interrupted = True
        exp.problems.append("interrupted (Ctrl-C)" + (
            f"; the restore of {exp.left_faulted} did not complete" if exp.left_faulted else ""))
    return exp


def _fault_under_observation(ctx: WebDrillContext, fault: WebFault, exp: WebExperiment) -> None:
    with Observation(ctx.vip, ctx.options.probe_interval, ctx.options.probe_timeout,
                     max_seconds=steps.observation_s(ctx),
                     session_clients=SESSION_CLIENTS) as obs:
        steps.observe_baseline()
        try:
            if steps.inject(ctx, fault, exp):
                steps.hold(ctx)
        finally:
            steps.restore(ctx, fault, exp)
        if exp.injected and not exp.problems:
            steps.settle(ctx, exp, obs)
    exp.records = obs.records
    exp.session_answers = obs.session_answers


def run_web_drill(ctx: WebDrillContext, fault: WebFault, repeat: int = 1,
                  png: Callable[[int], Path] | None = None,
                  on_experiment: Callable[[int, WebExperiment], None] = lambda _n, _e: None,
                  ) -> WebDrillRun:
    """Run up to `repeat` experiments (stopping at the first that fails or is interrupted);
    `png(number)` says where to draw each injected run's timeline."""
    from tasks.drill.web_timeline_png import render_web_timeline

    def one(number: int) -> WebExperiment:
        ctx.progress(f"run {number}/{repeat}: {fault.name} on {ctx.target}")
        exp = run_web_experiment(ctx, fault)
        if png is not None and exp.injected:
            exp.png = render_web_timeline(png(number), exp, ctx.target)
        return exp

    def close() -> None:
        ctx.proxies.close_connections()
        ctx.webs.close_connections()

    return repeat_experiments(WebDrillRun(fault.name, repeat), one, on_experiment, close)
