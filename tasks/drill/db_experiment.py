"""The db drill: experiments made of steps, run in order (as the proxy and web drills).

1. steady state: one writable node, its replica in sync, semi-sync on (tasks.db.status);
2. observe: the watcher (started here unless one runs), the writers and the app requests,
   a baseline;
3. fault on the primary (tasks.drill.db_faults);
4. expect: the replica promoted by the watcher (a switchover promotes it itself), exactly
   one writable node;
5. restore (always once injected, Ctrl-C too): the node back (read-only), its rows read,
   then rejoined as a replica (tasks.db.failover.rejoin);
6. the writers stopped; the nodes converge; every row read back; the history judged
   (tasks.drill.db_history); divergence: GTID sets and CHECKSUM TABLE on both;
7. steady state again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from tasks.db.degraded import degraded_mark
from tasks.db.failover import rejoin
from tasks.db.insync import record_in_sync
from tasks.db.roles import root_command
from tasks.db.sql import DbError, query
from tasks.db.status import cluster_status
from tasks.db.tier import Steps
from tasks.drill.db_context import DbDrillContext
from tasks.drill.db_faults import DbFault
from tasks.drill.db_history import Marks, analyze
from tasks.drill.db_observed import Observed
from tasks.drill.db_record import DbDrillRun, DbExperiment
from tasks.drill.db_workload import Workload, WorkloadError
from tasks.drill.record import repeat_experiments

BASELINE_S = 2.0
AFTER_S = 3.0  # writes after the rejoin, before the writers stop
PROMOTION_TIMEOUT = 40.0
CONVERGE_TIMEOUT = 30.0
HOLD_S = 4.0  # replica-crash: how long the replica stays down


def writable(ctx: DbDrillContext, while_faulted: bool = False) -> list[str]:
    """The writable nodes; `while_faulted`: read with the watcher's short timeouts, so that a
    dead node costs 0.5 s, not the 3 s connect timeout (a replica-crash's hold stays 4 s)."""
    tier = ctx.watch_tier if while_faulted else ctx.tier
    return sorted(n.name for n in tier.statuses().values() if n.role == "primary")


def check_steady_state(ctx: DbDrillContext, exp: DbExperiment, when: str,
                       on_replica: bool = False) -> bool:
    """One writable node, its replica in sync, semi-sync on (bounded wait). The first time,
    the target: the primary (the replica with `on_replica`); the successor: the other."""
    deadline = time.monotonic() + ctx.settle_timeout
    while True:
        cluster = cluster_status(list(ctx.tier.statuses().values()))
        if cluster.ok and cluster.primary:
            record_in_sync(cluster)  # seen in sync, as db_status records it
            if not exp.target:
                other = next(n.name for n in cluster.nodes if n.name != cluster.primary)
                exp.target, exp.successor = ((other, cluster.primary) if on_replica
                                             else (cluster.primary, other))
            return True
        if time.monotonic() > deadline:
            exp.problems += [f"steady state not met {when}: {p}" for p in cluster.problems]
            return False
        time.sleep(0.5)


def pair(exp: DbExperiment, fault: DbFault) -> tuple[str, str]:
    """(primary, replica) before the fault."""
    return (exp.successor, exp.target) if fault.on_replica else (exp.target, exp.successor)


def expect_blocked(ctx: DbDrillContext, exp: DbExperiment, observed: Observed) -> None:
    """Step 4 of replica-crash: nothing fails over, the primary stays the only writable node,
    its semi-sync stays on (its commits wait: checked on the history), for HOLD_S."""
    time.sleep(HOLD_S)
    if observed.mark("promoting") is not None:
        exp.problems.append("the watcher failed over while only the replica was down")
    exp.writable_after_fault = writable(ctx, while_faulted=True)
    if exp.writable_after_fault != [exp.successor]:
        exp.problems.append(f"with the replica down, writable nodes: "
                            f"{exp.writable_after_fault} (expected {exp.successor})")
    with ctx.tier.conn(exp.successor) as conn:
        rows = query(conn, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")
    state = rows[0]["Value"] if rows else "?"
    exp.divergence["semi_sync_with_replica_down"] = state
    if state != "ON":
        exp.problems.append(f"{exp.successor}: semi-sync is {state} with the replica down "
                            "(it went async)")


def async_leaks(exp: DbExperiment) -> list[str]:
    """ok writes that began after the replica died and ended before the drill began to bring
    it back: they were acknowledged without a copy (semi-sync fell back to async)."""
    fault, back = exp.marks.fault, exp.marks.restoring
    if fault is None or back is None:
        return []
    return [o.key for o in exp.ops if o.outcome == "ok" and o.start > fault and o.end < back
            and o.node == exp.successor]


def expect_promotion(ctx: DbDrillContext, fault: DbFault, exp: DbExperiment,
                     observed: Observed) -> None:
    """Step 4: the watcher promoted the replica (bounded); exactly one writable node."""
    if fault.planned and observed.mark("promoting") is not None:
        exp.problems.append("the watcher failed over during a planned switchover")
    if not fault.planned:
        deadline = time.monotonic() + PROMOTION_TIMEOUT
        while not observed.finished() and time.monotonic() < deadline:
            if observed.outside and exp.successor in writable(ctx, while_faulted=True):
                break
            time.sleep(0.1)
        if observed.error or (observed.mark("promoted") is None and not observed.outside):
            why = observed.error or next((e.text for e in (observed.watcher.events if
                                                            observed.watcher else [])
                                          if e.kind in ("refused", "failed")), "no decision")
            exp.problems.append(f"the watcher did not promote {exp.successor} within "
                                f"{PROMOTION_TIMEOUT:.0f} s: {why}")
            return
    exp.marks = replace(exp.marks, degraded=degraded_mark() is not None)
    exp.writable_after_fault = writable(ctx, while_faulted=True)
    if exp.writable_after_fault != [exp.successor]:
        exp.problems.append(f"after the fault, writable nodes: {exp.writable_after_fault} "
                            f"(expected exactly {exp.successor})")


def restore(ctx: DbDrillContext, fault: DbFault, exp: DbExperiment, steps: Steps) -> set[str]:
    """Step 5: the node back, its rows read (before it rejoins), rejoined. Its rows."""
    old_rows: set[str] = set()
    if exp.left_faulted is None:
        return old_rows
    ctx.progress(f"restore {exp.target} ({fault.name})")
    exp.marks = replace(exp.marks, restoring=time.monotonic())
    try:
        fault.restore(ctx, *pair(exp, fault), steps)
        if not fault.planned:
            ctx.tier.on(exp.target, root_command,
                        command="pidof mariadbd >/dev/null || service mariadb start")
            old_rows = read_keys(ctx, exp.target, exp)
            rejoin(ctx.tier, exp.target, steps)
    except Exception as exc:  # noqa: BLE001 - reported: the drill fails, the node is named
        exp.problems.append(f"restore of {exp.target} failed: {exc}")
        return old_rows
    if not fault.planned:
        exp.marks = replace(exp.marks, rejoined=time.monotonic())
    exp.left_faulted = None
    return old_rows


def read_keys(ctx: DbDrillContext, name: str, exp: DbExperiment) -> set[str]:
    """The drill's rows (this run's keys) on a node."""
    prefix = exp_run(exp)
    deadline = time.monotonic() + 30
    while True:
        try:
            with ctx.tier.conn(name, read_timeout=30) as conn:
                rows = query(conn, f"SELECT served_by FROM {ctx.database}.visits "
                                   "WHERE served_by LIKE %s", (prefix + "-%",))
            return {str(r["served_by"]) for r in rows}
        except DbError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def exp_run(exp: DbExperiment) -> str:
    return str(exp.divergence.get("run", ""))


def divergence(ctx: DbDrillContext, exp: DbExperiment) -> dict:
    """GTID sets and CHECKSUM TABLE on both nodes, once they agree (bounded)."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while True:
        seen = {}
        for name in (exp.successor, exp.target):
            with ctx.tier.conn(name, read_timeout=30) as conn:
                gtid = query(conn, "SELECT @@gtid_current_pos AS pos")[0]["pos"]
                checksum = query(conn, f"CHECKSUM TABLE {ctx.database}.visits")[0]["Checksum"]
            seen[name] = {"gtid_current_pos": gtid, "checksum": checksum}
        same = len({(v["gtid_current_pos"], v["checksum"]) for v in seen.values()}) == 1
        if same or time.monotonic() > deadline:
            return {"nodes": seen, "diverged": not same}
        time.sleep(0.3)


def marks_from(exp: DbExperiment, observed: Observed, steps: Steps, fault: DbFault,
               promoted_at: float | None) -> Marks:
    if fault.on_replica:
        return exp.marks
    if fault.planned:
        started = exp.marks.fault
        return replace(exp.marks, promoting=started, promoted=promoted_at)
    return replace(exp.marks, suspected=observed.mark("suspected"),
                   confirmed=observed.mark("confirmed"), promoting=observed.mark("promoting"),
                   promoted=observed.mark("promoted") or promoted_at)


def run_db_experiment(ctx: DbDrillContext, fault: DbFault) -> DbExperiment:
    """Steps 1 to 7 (the module's docstring); Ctrl-C ends it restored, `interrupted` set."""
    exp = DbExperiment(fault.name)
    exp.divergence["run"] = "drill-" + uuid.uuid4().hex[:8]
    try:
        if check_steady_state(ctx, exp, "before the fault", fault.on_replica):
            _observe_fault(ctx, fault, exp)
    except KeyboardInterrupt:
        exp.interrupted = True
        exp.problems.append("interrupted (Ctrl-C)" + (
            f"; the restore of {exp.left_faulted} did not complete" if exp.left_faulted
            else ""))
    return exp


def _observe_fault(ctx: DbDrillContext, fault: DbFault, exp: DbExperiment) -> None:
    steps = Steps(out=ctx.progress)
    observed = Observed(ctx)
    workload = Workload(ctx, exp_run(exp))
    old_rows: set[str] = set()
    promoted_at = None
    try:
        workload.start()
        time.sleep(BASELINE_S)
        ctx.progress(f"inject {fault.name} on {exp.target}: {fault.story}")
        exp.marks = Marks(fault=time.monotonic())
        exp.left_faulted = exp.target
        fault.inject(ctx, *pair(exp, fault), steps)
        promoted_at = time.monotonic() if fault.planned else None
        if fault.on_replica:
            expect_blocked(ctx, exp, observed)
        else:
            expect_promotion(ctx, fault, exp, observed)
    except (DbError, WorkloadError, OSError, RuntimeError) as exc:
        exp.problems.append(f"{fault.name}: {exc}")
    finally:
        old_rows = restore(ctx, fault, exp, steps)
        exp.watcher = observed.close()
        exp.marks = marks_from(exp, observed, steps, fault, promoted_at)
        _finish(ctx, exp, workload, set() if fault.on_replica else old_rows,
                None if fault.on_replica else exp.target)


def _finish(ctx: DbDrillContext, exp: DbExperiment, workload: Workload,
            old_rows: set[str], old_primary: str | None) -> None:
    """Step 6 and 7 (the writers stopped, then `_judge`)."""
    if workload.proc is None:
        return
    time.sleep(AFTER_S)
    try:
        exp.ops = workload.finish()
    except WorkloadError as exc:
        exp.problems.append(str(exc))
        return
    exp.requests = workload.requests
    try:
        _judge(ctx, exp, old_rows, old_primary)
    except DbError as exc:
        exp.problems.append(f"cannot judge the history: {exc}")


def _judge(ctx: DbDrillContext, exp: DbExperiment, old_rows: set[str],
           old_primary: str | None) -> None:
    """Divergence, the rows read back, the history judged, the end state."""
    exp.divergence.update(divergence(ctx, exp))
    if exp.divergence["diverged"]:
        exp.problems.append(f"{exp.target} and {exp.successor} differ after the rejoin: "
                            f"{exp.divergence['nodes']}")
    rows = read_keys(ctx, exp.successor, exp)
    named = [replace(o, node=ctx.names.get(o.node, o.node)) for o in exp.ops]
    exp.ops = named
    exp.history = analyze(named, rows, old_primary=old_primary,
                          old_rows=old_rows if old_rows else None, marks=exp.marks)
    exp.problems += exp.history.problems()
    leaks = async_leaks(exp) if old_primary is None else []
    exp.divergence["acknowledged_without_replica"] = len(leaks)
    if leaks:
        exp.problems.append(f"{len(leaks)} write(s) acknowledged while the replica was down "
                            f"(async): {', '.join(leaks[:5])}")
    if not any(o.outcome == "ok" and o.node == exp.successor for o in named):
        exp.problems.append(f"no write succeeded on {exp.successor}")
    exp.writable_at_end = writable(ctx)
    if exp.writable_at_end != [exp.successor]:
        exp.problems.append(f"writable nodes at the end: {exp.writable_at_end}")
    check_steady_state(ctx, exp, "after the restore")


def run_db_drill(ctx: DbDrillContext, fault: DbFault, repeat: int = 1,
                 on_experiment: Callable[[int, DbExperiment], None] = lambda _n, _e: None,
                 ) -> DbDrillRun:
    """Up to `repeat` experiments, stopping at the first that fails or is interrupted."""
    def one(number: int) -> DbExperiment:
        ctx.progress(f"run {number}/{repeat}: {fault.name}")
        return run_db_experiment(ctx, fault)

    return repeat_experiments(DbDrillRun(fault.name, repeat), one, on_experiment,
                              ctx.tier.nr.close_connections)
