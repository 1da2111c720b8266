"""The last time the framework saw the db tier healthy, and whether a replica is promotable.

Whenever the framework sees the whole tier healthy (one primary, semi-sync on, every replica
running without error, lag or divergence: the deploy's checks, ``db_status``, a switchover, a
rejoin or rebuild, the watcher) it records, in the controller's state directory
(``IN_SYNC_FILE``), the primary and each node's boot time and GTID position.

``failover`` promotes a replica only if that record says it was in sync with the dead primary
and it has not restarted since (its boot time: ``UNIX_TIMESTAMP() - Uptime``, whole seconds):
a replica that restarted dropped its relay log (``relay_log_recovery``), which may have held
the only copy of writes the primary acknowledged. It also refuses a node that holds less than
when it was seen, or transactions of its own (``gtid_binlog_pos`` ahead of
``gtid_slave_pos``: written there, not received), and any replica of a degraded tier.
``promotion_refusal`` is that decision (pure); ``promotability`` gives it for every replica
(``db_status``).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from typing import Any

from tasks.core import state
from tasks.db import gtid
from tasks.db.status import ClusterStatus, NodeStatus

IN_SYNC_FILE = "db_in_sync.json"
# Boot times are whole seconds from two whole-second readings: the same boot may read one
# second apart. A restart moves it by at least the node's uptime when it was recorded.
BOOT_SLACK = 2


def sync_record(cluster: ClusterStatus, seen: str | None = None) -> dict[str, Any] | None:
    """What to record for a healthy tier (None when it is not healthy or a node's boot time
    is unknown)."""
    if not cluster.ok or cluster.primary is None:
        return None
    if any(n.booted is None for n in cluster.nodes):
        return None
    return {"seen": seen or datetime.now(UTC).isoformat(timespec="seconds"),
            "primary": cluster.primary,
            "nodes": {n.name: {"booted": n.booted, "position": n.gtid_current_pos,
                               "role": n.role} for n in cluster.nodes}}


def record_in_sync(cluster: ClusterStatus) -> bool:
    """Record the tier as seen in sync when it is healthy; True when recorded. The file is
    replaced atomically (checks of several hosts may record at the same time)."""
    record = sync_record(cluster)
    if record is None:
        return False
    state.STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state.STATE_DIR, prefix=".db_in_sync.")
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(record) + "\n")
    os.replace(tmp, state.STATE_DIR / IN_SYNC_FILE)
    return True


def last_in_sync() -> dict[str, Any] | None:
    """The last record (None when the tier was never seen healthy from this controller)."""
    try:
        return json.loads((state.STATE_DIR / IN_SYNC_FILE).read_text())
    except FileNotFoundError:
        return None


def restarted(booted_now: int | None, booted_then: int) -> bool:
    """The node booted again since it was recorded (unknown counts as restarted)."""
    return booted_now is None or abs(booted_now - booted_then) > BOOT_SLACK


def _seen_refusal(node: NodeStatus, primary: str, record: dict[str, Any] | None) -> str:
    """Why the record does not show `node` in sync with `primary` ('' when it does)."""
    name = node.name
    if record is None:
        return (f"the tier was never seen healthy from this controller (no "
                f"{IN_SYNC_FILE}): {name} is not known to hold {primary}'s writes")
    seen = record.get("nodes", {}).get(name)
    if record.get("primary") != primary or seen is None or seen.get("role") != "replica":
        return (f"when the tier was last seen healthy ({record.get('seen')}) {name} was not "
                f"a replica of {primary} in sync (primary then: {record.get('primary')})")
    if restarted(node.booted, int(seen["booted"])):
        return (f"{name} restarted since it was last seen in sync ({record.get('seen')}): "
                "a restart drops the relay log, which may have held the only copy of writes "
                f"{primary} acknowledged")
    if not gtid.contains(node.gtid_current_pos, seen.get("position", "")):
        return (f"{name} holds less than when it was last seen in sync (now "
                f"{node.gtid_current_pos or 'nothing'}, then {seen.get('position')})")
    return ""


def promotion_refusal(node: NodeStatus, primary: str, record: dict[str, Any] | None,
                      degraded: dict[str, Any] | None) -> str:
    """Why `node` must not replace `primary` ('' when it may), from the last in-sync record,
    the degraded mark and what the node says now (pure)."""
    if degraded is not None:
        return (f"the tier has run without semi-sync since {degraded.get('since')} "
                f"(degrade): {node.name} may lack acknowledged writes")
    if not node.reachable:
        return f"{node.name} does not answer: {node.error}"
    return own_transactions(node, primary) or _seen_refusal(node, primary, record)


def own_transactions(node: NodeStatus, primary: str) -> str:
    """Why `node` must not replace `primary` when it wrote transactions of its own ('' when
    it did not): its binlog holds more than it replicated (pure)."""
    own = gtid.ahead(node.gtid_binlog_pos, node.gtid_slave_pos)
    if own:
        return (f"{node.name} has transactions of its own that {primary} never had "
                f"({', '.join(own)}): it diverged")
    return ""


def promotability(cluster: ClusterStatus, record: dict[str, Any] | None,
                  degraded: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(replica, why it is not promotable or '') for every node but the primary; the
    primary is the actual one, or the one last seen (none answers)."""
    primary = cluster.primary or (record or {}).get("primary")
    if primary is None:
        return []
    return [(n.name, promotion_refusal(n, primary, record, degraded))
            for n in cluster.nodes if n.name != primary]
