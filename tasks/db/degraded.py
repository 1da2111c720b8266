"""The record of a degraded tier: the primary was switched to async on purpose
(``runbooks/db_failover.py degrade``, or a failover with ``degrade``: the watcher's default).
Kept in the controller's state directory; while it exists no replica is promoted by
``failover``. Cleared once a replica has caught up and semi-sync is on again (``rejoin``,
or the deploy's replica step).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tasks.core import state

DEGRADED_MARK = "db_degraded.json"


def degraded_mark() -> dict | None:
    """The record (since, primary, position), or None when the tier is not degraded."""
    try:
        return json.loads((state.STATE_DIR / DEGRADED_MARK).read_text())
    except FileNotFoundError:
        return None


def mark_degraded(primary: str, position: str, why: str = "runbooks/db_failover.py degrade",
                  ) -> None:
    if degraded_mark() is None:
        record = {"since": datetime.now(UTC).isoformat(timespec="seconds"),
                  "primary": primary, "position": position, "why": why}
        (state.STATE_DIR / DEGRADED_MARK).write_text(json.dumps(record) + "\n")


def clear_degraded() -> None:
    (state.STATE_DIR / DEGRADED_MARK).unlink(missing_ok=True)
