"""What the drill watches while it runs: a sniffer on the bridge and probes through the VIP.

`Observation` is a context manager: both start on enter and both stop on exit, whatever
happened in between (an error, Ctrl-C); then `records` and `packets` hold what was seen.
"""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType
from typing import Any

from tasks.core.probe import ProbeLoop, ProbeRecord

PROBE_MAX_SECONDS = 90.0  # the probe loop stops by itself after this long
CAPTURE_FILTER = "ip proto 112 or arp"  # VRRP and ARP


class Observation:
    """A probe loop to `vip` and, with `iface`, a Scapy sniffer of VRRP and ARP."""

    def __init__(self, vip: str, interval: float, timeout: float,
                 iface: str | None = None, max_seconds: float = PROBE_MAX_SECONDS) -> None:
        self.vip, self.interval, self.timeout, self.iface = vip, interval, timeout, iface
        self.max_seconds = max_seconds
        self.records: list[ProbeRecord] = []
        self.packets: list[Any] = []
        self._probes: ProbeLoop | None = None
        self._stack = ExitStack()

    def __enter__(self) -> Observation:
        with ExitStack() as stack:  # if a start fails, what already started is stopped
            if self.iface is not None:
                from scapy.sendrecv import AsyncSniffer

                sniffer = AsyncSniffer(iface=self.iface, filter=CAPTURE_FILTER, store=True)
                sniffer.start()
                stack.callback(self._stop_sniffer, sniffer)
            self._probes = ProbeLoop(self.vip, self.interval, self.timeout,
                                     self.max_seconds).start()
            stack.callback(self._stop_probes, self._probes)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()  # each stop runs even if another one fails

    def answered_since(self, since: float) -> bool:
        """Whether a probe sent after `since` (epoch seconds) has succeeded yet."""
        records = self._probes.records_so_far() if self._probes is not None else []
        return any(r.ok and r.time > since for r in records)

    def served_by_since(self, server: str, since: float) -> bool:
        """Whether `server` has answered a probe sent after `since` (epoch seconds) yet."""
        records = self._probes.records_so_far() if self._probes is not None else []
        return any(r.ok and r.server == server and r.time > since for r in records)

    def _stop_probes(self, probes: ProbeLoop) -> None:
        self.records = probes.stop()

    def _stop_sniffer(self, sniffer: Any) -> None:
        if sniffer.running:
            self.packets = list(sniffer.stop() or [])
