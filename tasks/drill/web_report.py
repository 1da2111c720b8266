"""Plain-text report of a web drill: the bound, the clients per phase, NGINX's view.

Times are relative to the fault ("+5.010 s"); NGINX's return to the node is also given
relative to the restore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.drill.nginx_site import HEALTHY_ANSWER_S, NginxTimeouts
from tasks.drill.sessions import SessionStats
from tasks.drill.web_analysis import PhaseStats
from tasks.drill.web_record import WebExperiment
from tasks.drill.web_verdict import PHASE_LABELS

if TYPE_CHECKING:
    from tasks.drill.web_context import WebDrillContext
    from tasks.drill.web_faults import WebFault


def _s(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def _rel(t: float | None, t0: float) -> str:
    return "-" if t is None else f"{t - t0:+.3f} s"


def bound_line(n: NginxTimeouts, probe_timeout: float) -> str:
    return (f"bound: a request meets the faulted server at most once, for at most "
            f"max(connect {n.connect_s:g} s, read {n.read_s:g} s), then a healthy server "
            f"answers (< {HEALTHY_ANSWER_S:g} s): slowest request <= {n.latency_bound_s:g} s; "
            f"probe timeout {probe_timeout:g} s")


def header_lines(ctx: WebDrillContext, fault: WebFault, repeat: int) -> list[str]:
    """The fault, the proxy settings it meets, the bound they give."""
    n = ctx.nginx
    return [
        f"web drill: {fault.name} x{repeat} on {ctx.target} ({ctx.target_server}), clients "
        f"through the VIP {ctx.vip}.",
        f"  {fault.story}",
        f"  NGINX: proxy_connect_timeout {n.connect_s:g} s, proxy_read_timeout {n.read_s:g} s, "
        f"proxy_next_upstream {' '.join(n.next_upstream)}, max_fails {n.max_fails}, "
        f"fail_timeout {n.fail_timeout_s:g} s",
        "  " + bound_line(n, ctx.options.probe_timeout),
    ]


def phase_line(name: str, p: PhaseStats) -> str:
    errors = "" if not p.errors else " (" + ", ".join(
        f"{e} x{k}" for e, k in sorted(p.errors.items())) + ")"
    return (f"  {PHASE_LABELS[name]:<18} {p.requests:>5} requests, {p.failed} failed{errors}, "
            f"p50 {_s(p.p50_s)}, p99 {_s(p.p99_s)}, max {_s(p.max_s)}")


def nginx_lines(exp: WebExperiment) -> list[str]:
    v, t0 = exp.view, exp.fault_time
    if v is None:
        return ["NGINX: the proxies' logs could not be read"]
    resumed = ("-" if v.resumed is None or exp.restored_time is None
               else f"{v.resumed - exp.restored_time:.2f} s after the restore "
                    f"({_rel(v.resumed, t0)})")
    return [
        f"NGINX (proxies' logs, {v.lines} requests): stopped sending to {exp.target} at "
        f"{_rel(v.stopped, t0)} (last try sent), marked it down at {_rel(v.marked_down, t0)} "
        f"(first failed try ended), first request sent elsewhere {_rel(v.first_skipped, t0)}",
        f"  {v.failed_tries} failed tries on {exp.target}, {v.retried} requests retried on "
        f"another server, {v.trial_tries} trial tries while faulted, {v.failed_at_proxy} "
        f"answered 5xx; sent to {exp.target} again {resumed}",
    ]


def session_line(s: SessionStats, store: str) -> str:
    expected = "expected 0" if store == "db" else "not expected 0: each web server keeps its own"
    return (f"sessions (store {store}, {s.clients} cookie-jar clients): "
            f"{s.lost} lost ({expected}), {s.answers} answers counted on, "
            f"{s.skipped_hits} hits unseen (answers lost after the save), "
            f"{s.without_session} answers without a session, {s.failed} failed")


def experiment_lines(exp: WebExperiment) -> list[str]:
    """One run: phases, NGINX's view, the return to rotation, then the verdict line."""
    lines = [f"client requests through the VIP (probe timeout {exp.probe_timeout_s:g} s), "
             f"t0 = the fault:"]
    lines += [phase_line(name, p) for name, p in exp.phases.items()]
    if exp.injected:
        lines += nginx_lines(exp)
    if exp.sessions is not None:
        lines.append(session_line(exp.sessions, exp.session_store))
    if exp.back_in_rotation_s is not None:
        lines.append(f"{exp.target} answered clients again {exp.back_in_rotation_s:.2f} s "
                     f"after the restore; steady state back "
                     f"{_s(exp.steady_after_restore_s, 2)} after it")
    if exp.png is not None:
        lines.append(f"timeline: {exp.png}")
    verdict = "PASS" if exp.ok else "FAIL: " + "; ".join(exp.problems)
    sessions = ", no session lost" if exp.session_store == "db" else ""
    lines.append(f"expectation (no failed request, none slower than "
                 f"{exp.nginx.latency_bound_s:g} s, NGINX takes {exp.target} out and back, "
                 f"{exp.target} back in rotation{sessions}): {verdict}")
    return lines


def interruption_line(target: str | None) -> str:
    if target:
        return (f"interrupted during the restore of {target}: check it with "
                "`python runbooks/lab.py status` and re-run runbooks/deploy.py")
    return "interrupted; nothing left faulted"
