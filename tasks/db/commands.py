"""The database commands of ``runbooks/db_failover.py``, one call each: the tier a command
works on, the watcher run until its bounds or a signal, and the operations with their exit
codes (0 done; 1 refused or failed: the message says what to run next)."""

from __future__ import annotations

import signal
import threading

from tasks.core.inventory import tier_hosts
from tasks.core.nornir_build import build_nornir
from tasks.core.settings import ProjectError, Settings
from tasks.db.failover import degrade, failover, rejoin, switchover
from tasks.db.rebuild import rebuild
from tasks.db.sql import DbError, DbTarget
from tasks.db.tier import Refused, Steps, Tier
from tasks.db.watch import WatchSettings, watch, watcher_tier

PROBE_TIMEOUT = WatchSettings.probe_timeout  # also the watcher's connect timeout


def command_tier(settings: Settings, name: str | None, for_watch: bool) -> Tier:
    """The db tier's Nornir and SQL target (short timeouts for the watcher); ProjectError
    (exit 2) for a `name` that is not a db host of the inventory."""
    everyone = build_nornir(settings, check_lab=False)
    db = [h.name for h in tier_hosts(everyone.inventory, "db")]
    if name is not None and name not in db:
        where = everyone.config.inventory.options["host_file"]
        raise ProjectError(f"{where}: {name} is not a db host of the inventory "
                           f"(db hosts: {', '.join(db)})", 2)
    nr = build_nornir(settings, groups=["db"])  # checks the lab route before connecting
    if for_watch:
        return watcher_tier(nr, DbTarget.from_settings(settings), WatchSettings())
    return Tier(nr, DbTarget.from_settings(settings))


def run_watch(tier: Tier, settings: WatchSettings, steps: Steps, duration: float,
              max_failovers: int) -> int:
    """The watcher until its bounds, Ctrl-C or SIGTERM (a failover under way finishes)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _s, _f: stop.set())
    try:
        watcher = watch(tier, settings, steps, stop, duration, max_failovers)
    except (Refused, DbError) as exc:
        return _said(steps, exc)
    finally:
        tier.nr.close_connections()
    if watcher is None or stop.is_set():
        steps.say("watch: stopped (signal)")
        return 130 if watcher is None else 0
    steps.say(f"watch: done ({watcher.failovers} failover(s))")
    return 0


def run_operation(tier: Tier, command: str, name: str | None, steps: Steps,
                  degraded: bool = False) -> int:
    """switchover, failover, rejoin, rebuild or degrade; the exit code."""
    operations = {
        "switchover": lambda: switchover(tier, str(name), steps),
        "failover": lambda: failover(tier, name, steps, degrade=degraded),
        "rejoin": lambda: rejoin(tier, str(name), steps),
        "rebuild": lambda: rebuild(tier, str(name), steps),
        "degrade": lambda: degrade(tier, steps),
    }
    try:
        operations[command]()
    except (Refused, DbError) as exc:
        return _said(steps, exc)
    finally:
        tier.nr.close_connections()
    return 0


def _said(steps: Steps, exc: Refused | DbError) -> int:
    if isinstance(exc, Refused):
        steps.say(f"REFUSED: {exc}")
    else:
        steps.say(f"FAILED: {exc} (safe to run again once the cause is fixed; see "
                  "runbooks/db_status.py)")
    return 1
