"""Order between the tiers while every host runs in parallel: db, then web, then rp.

Only what applies waits, and only for what it needs (``prerequisites``): a web node's Apache
goes live at once, its database settings (service ``app``) once the db tier is done; a proxy's
Keepalived needs nothing from the other tiers, so on a first deploy the proxies' VRRP election
runs while the web and db tiers deploy; NGINX waits for them when it is already serving.
Checks are ordered too (``verify_after``): a proxy is checked once the web hosts of the run
are done, whether or not the proxy itself changed, at most ``CHECK_WAIT`` seconds;
the gate also tells whether any of those hosts changed (``changed``), so that an unchanged
proxy is checked afresh then (and reloaded when its web servers came up: tasks/deploy/host.py).
"""

from __future__ import annotations

import threading
import time

from tasks.core.inventory import TIERS

CHECK_WAIT = 300.0  # seconds a host's check waits at most for the tiers it depends on


class TierGate:
    """Lets a host apply only once every host of the earlier tiers has finished."""

    def __init__(self, hosts_per_tier: dict[str, int], order: tuple[str, ...] = TIERS):
        self.order = order
        self._left = {t: hosts_per_tier.get(t, 0) for t in order}
        self._present = {t for t, n in self._left.items() if n > 0}
        self._changed: set[str] = set()
        self._done = {t: threading.Event() for t in order}
        self._lock = threading.Lock()
        for tier, left in self._left.items():
            if left == 0:
                self._done[tier].set()

    def wait(self, tier: str, timeout: float = 600.0) -> float:
        """Block until the tiers before `tier` are done; return the seconds waited."""
        return self.wait_for(self.order[: self.order.index(tier)], timeout)

    def wait_for(self, tiers: tuple[str, ...], timeout: float = 600.0) -> float:
        """Block until every host of `tiers` is done; return the seconds waited."""
        started = time.monotonic()
        for tier in tiers:
            if not self._done[tier].wait(max(0.0, timeout - (time.monotonic() - started))):
                raise TimeoutError(f"the {tier} tier did not finish within {timeout:.0f} s; "
                                   "nothing applied out of order")
        return time.monotonic() - started

    def done(self, tiers: tuple[str, ...]) -> bool:
        """True when every host of `tiers` has finished (no waiting)."""
        return all(self._done[t].is_set() for t in tiers)

    def present(self, tier: str) -> bool:
        """True when the run has hosts of `tier`."""
        return tier in self._present

    def changed(self, tiers: tuple[str, ...]) -> bool:
        """True when a host of `tiers` that finished changed something (or failed)."""
        with self._lock:
            return bool(self._changed & set(tiers))

    def finished(self, tier: str, changed: bool = True) -> None:
        """One host of `tier` is done; `changed`: it changed something or failed."""
        with self._lock:
            if changed:
                self._changed.add(tier)
            self._left[tier] -= 1
            if self._left[tier] <= 0:
                self._done[tier].set()


def earlier(tier: str) -> tuple[str, ...]:
    """The tiers deployed before `tier`."""
    return TIERS[: TIERS.index(tier)]


def prerequisites(tier: str, service: str, running: bool = True) -> tuple[str, ...]:
    """Tiers to finish before a service's files go live on a host of `tier`.

    `running`: the service's daemon runs now (it serves traffic). A web node's database
    settings need the db tier; a serving NGINX needs the web tier (and the db tier before
    it); everything else goes live at once.
    """
    if tier == "web" and service == "app":
        return ("db",)
    if tier == "rp" and service == "nginx" and running:
        return earlier("rp")
    return ()


def verify_after(tier: str) -> tuple[str, ...]:
    """Tiers to finish before a host is checked, changed or not: a proxy answers through the
    web tier (the db tier is not on its check's path: the page answers without it)."""
    return ("web",) if tier == "rp" else ()
