"""Order between the tiers while every host runs in parallel: db, then web, then rp.

Only what applies waits, and only for what it needs (``prerequisites``): a web node's Apache
goes live at once, its database settings (service ``app``) once the db tier is done; a proxy's
Keepalived needs nothing from the other tiers, so on a first deploy the proxies' VRRP election
runs while the web and db tiers deploy; NGINX waits for them when it is already serving, and
when it went live earlier it is reloaded once they are done (``reload_after``), which clears
the passive health marks (max_fails) set while the web servers were not up yet.
"""

from __future__ import annotations

import threading
import time

from tasks.core.inventory import TIERS


class TierGate:
    """Lets a host apply only once every host of the earlier tiers has finished."""

    def __init__(self, hosts_per_tier: dict[str, int], order: tuple[str, ...] = TIERS):
        self.order = order
        self._left = {t: hosts_per_tier.get(t, 0) for t in order}
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

    def finished(self, tier: str) -> None:
        with self._lock:
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


def reload_after(tier: str, service: str) -> tuple[str, ...]:
    """Tiers after which a service that went live before them is reloaded (NGINX: its
    failure marks against web servers that were not up yet)."""
    return earlier("rp") if (tier, service) == ("rp", "nginx") else ()


def verify_after(tier: str) -> tuple[str, ...]:
    """Tiers to finish before a changed host is checked (a proxy answers through the web
    tier)."""
    return earlier("rp") if tier == "rp" else ()
