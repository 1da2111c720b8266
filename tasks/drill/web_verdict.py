"""The web drill's verdict, pure: analyse what an experiment recorded, list what did not hold.

Expectations for every web fault: no client request fails (NGINX retries it on another
server), none is slower than the bound the proxy's timeouts give (one failed try, then a
healthy answer), the proxies' logs show NGINX taking the node out after the fault and
sending to it again after the restore, and the node answers client requests again. With
the sessions in the database (session_store: db), no cookie-jar client loses its session
(tasks.drill.sessions); with files, the sessions lost are reported, not expected to be 0 (a
session lives on one web server).
"""

from __future__ import annotations

from tasks.drill.nginx_log import AccessLine
from tasks.drill.sessions import session_stats
from tasks.drill.web_analysis import back_in_rotation_s, nginx_view, phases
from tasks.drill.web_record import WebExperiment

PHASE_LABELS = {"before": "before the fault", "during": "during the fault",
                "after": "after the restore"}


def conclude_web(exp: WebExperiment, lines: list[AccessLine] | None, server: str,
                 fqdn: str, unparsed: int = 0) -> None:
    """Add the analyses to an injected experiment (`lines`: the proxies' log, None when it
    could not be read; `server`: the target as NGINX logs it; `fqdn`: as it answers)."""
    exp.phases = phases(exp.records, exp.fault_time, exp.restored_time)
    if lines is not None:
        exp.view = nginx_view(lines, server, exp.fault_time, exp.restored_time, unparsed)
    exp.back_in_rotation_s = back_in_rotation_s(exp.records, fqdn, exp.restored_time)
    exp.sessions = session_stats(exp.session_answers)
    exp.problems += web_problems(exp) + session_problems(exp)


def web_problems(exp: WebExperiment) -> list[str]:
    """What the analyses of `exp` show against its expectations (empty: all held)."""
    problems = []
    for name, stats in exp.phases.items():
        if stats.failed:
            errors = ", ".join(f"{e} x{n}" for e, n in sorted(stats.errors.items()))
            problems.append(f"{stats.failed} request(s) failed {PHASE_LABELS[name]} ({errors})")
    slowest = exp.phases["during"].max_s if "during" in exp.phases else None
    bound = exp.nginx.latency_bound_s
    if slowest is not None and slowest > bound:
        problems.append(f"the slowest request during the fault took {slowest:.3f} s, above "
                        f"the bound {bound:.3f} s")
    problems += _nginx_problems(exp)
    if exp.restored_time is not None and exp.back_in_rotation_s is None:
        problems.append(f"{exp.target} answered no request after the restore (not back in "
                        "rotation)")
    return problems


def _nginx_problems(exp: WebExperiment) -> list[str]:
    view = exp.view
    if view is None:
        return []  # the step that read the logs said why
    problems = []
    if view.marked_down is None:
        problems.append(f"the proxies' logs show no failed try on {exp.target} after the "
                        "fault: NGINX never took it out")
    if exp.restored_time is not None and view.resumed is None:
        problems.append(f"the proxies' logs show no request answered by {exp.target} after "
                        "the restore")
    if view.failed_at_proxy:
        problems.append(f"the proxies answered {view.failed_at_proxy} request(s) with 5xx "
                        "after the fault")
    return problems


def session_problems(exp: WebExperiment) -> list[str]:
    """Sessions in the database: every client kept its session and saw some of it."""
    stats = exp.sessions
    if stats is None or exp.session_store != "db":
        return []
    problems = []
    if stats.lost:
        first = stats.restarts[0]
        problems.append(
            f"{stats.lost} of {stats.clients} session client(s) lost their session (first: "
            f"client {first.client} went from {first.before[0]} hits={first.before[1]} to "
            f"{first.after[0]} hits={first.after[1]})")
    if stats.clients and not stats.answers:
        problems.append("no answer to the session clients showed a session")
    return problems
