"""Give the lab's db tier back to its inventory shape (primary db1, replica db2, in sync)
between lab tests, whatever a failed test left: so one failure stays one failure instead of
cascading through every later test file.

Gentle first, as an operator would (node up, cable in, a frozen server killed so that it boots
read-only, rejoin, switchover); when that is not enough, the lab is rebuilt and deployed
afresh. Every action is printed, and returned so a caller can tell a test that passed but
left the tier broken.
"""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import run_deploy

from tasks.core.nornir_build import build_nornir
from tasks.core.settings import REPO_ROOT, load_settings
from tasks.db.sql import DbTarget
from tasks.db.status import ClusterStatus, cluster_status
from tasks.db.verify import tier_statuses
from tp5lab.control import Lab

PRIMARY = "db1"
SETTLE_S = 20.0
# A frozen mariadbd (hang) is killed, never thawed: thawed it could take writes beside the
# promoted replica. Killed, it boots read-only. A missing one is started.
THAW_BY_KILL = ("for p in $(pidof mariadbd); do grep -q '^State:[[:space:]]*T' /proc/$p/status "
                "&& kill -KILL $p; done; sleep 0.3; pidof mariadbd >/dev/null || "
                "service mariadb start >/dev/null 2>&1; true")


def tier_state() -> ClusterStatus:
    target = DbTarget.from_settings(load_settings())
    return cluster_status(tier_statuses(target, build_nornir(groups=["db"]).inventory))


def healthy(cluster: ClusterStatus, primary: str | None = PRIMARY) -> bool:
    """In sync with one writable node: `primary` (None: any node)."""
    return cluster.ok and cluster.primary is not None and primary in (None, cluster.primary)


def _settled(timeout: float = SETTLE_S, primary: str | None = PRIMARY) -> ClusterStatus:
    """The tier's state once it is healthy, or as it is after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        cluster = tier_state()
        if healthy(cluster, primary) or time.monotonic() > deadline:
            return cluster
        time.sleep(0.5)


def _cli(*args: str) -> bool:
    done = subprocess.run([sys.executable, "runbooks/db_failover.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=240, check=False)
    print(f"heal: db_failover.py {' '.join(args)}: exit {done.returncode}\n"
          f"{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return done.returncode == 0


def _nodes_up(lab: Lab, names: list[str]) -> list[str]:
    done = []
    for name in names:
        if lab.pid1(name) is None:
            lab.restart(name)
            done.append(f"restarted node {name}")
        else:
            lab.restore_link(name)
        subprocess.run(lab.nsenter_argv(name, ["sh", "-c", THAW_BY_KILL]), check=False,
                       capture_output=True, timeout=60)
    return done


def _gentle(lab: Lab, cluster: ClusterStatus) -> list[str]:
    names = [n.name for n in cluster.nodes]
    done = _nodes_up(lab, names)
    cluster = _settled(5, None)
    writable = [n.name for n in cluster.nodes if n.role == "primary"]
    if len(writable) == 1:
        for other in (n for n in names if n != writable[0]):
            if other not in {n.name for n in cluster.nodes if n.role == "replica"}:
                done.append(f"rejoin {other}: " + ("ok" if _cli("rejoin", other) else "failed"))
        cluster = _settled(10, None)
    if cluster.ok and cluster.primary != PRIMARY:
        done.append(f"switchover to {PRIMARY}: "
                    + ("ok" if _cli("switchover", "--to", PRIMARY) else "failed"))
    return done


def heal_db_tier(lab: Lab, primary: str | None = PRIMARY) -> list[str]:
    """What was found and what it took to make the tier healthy again with `primary` writable
    (None: any node; a repair always ends on db1). Empty: it already was. Raises when even a
    fresh lab and deploy do not give a healthy tier."""
    cluster = _settled(5, primary)
    if healthy(cluster, primary):
        return []
    print(f"heal: the db tier is not healthy: {cluster.problems}")
    done = [f"found {cluster.problems or 'primary ' + str(cluster.primary)}"]
    done += _gentle(lab, cluster)
    cluster = _settled()
    if healthy(cluster):
        return done
    done.append(f"gentle repair not enough ({cluster.problems}): lab rebuilt and deployed")
    print(f"heal: {done[-1]}")
    lab.down()
    lab.up()
    run = run_deploy()
    assert run.returncode == 0, f"heal: deploy after the rebuild failed:\n{run.stdout}"
    cluster = _settled()
    assert healthy(cluster), f"heal: even a fresh lab is not healthy: {cluster.problems}"
    return done
