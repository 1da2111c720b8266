"""What the drill watches while it runs: a sniffer on the bridge, probes through the VIP and,
when asked, cookie-jar clients (tasks.drill.session_probe) whose sessions should survive.

`Observation` is a context manager: all start on enter and all stop on exit, whatever
happened in between (an error, Ctrl-C); then `records`, `packets` and `session_answers` hold
what was seen.
"""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType
from typing import Any

from tasks.core.probe import ProbeLoop, ProbeRecord
from tasks.drill.session_probe import SessionClients
from tasks.drill.sessions import SessionAnswer

PROBE_MAX_SECONDS = 90.0  # the probe loop stops by itself after this long
CAPTURE_FILTER = "ip proto 112 or arp"  # VRRP and ARP
# A session client waits longer than a probe: its request may also wait for its session's
# lock, held a few seconds by a web server that died holding it (templates/php/index.php.j2).
SESSION_TIMEOUT_FACTOR = 2.0


class Observation:
    """A probe loop to `vip`; with `iface`, a Scapy sniffer of VRRP and ARP; with
    `session_clients`, that many cookie-jar clients of `vip`."""

    def __init__(self, vip: str, interval: float, timeout: float,
                 iface: str | None = None, max_seconds: float = PROBE_MAX_SECONDS,
                 session_clients: int = 0) -> None:
        self.vip, self.interval, self.timeout, self.iface = vip, interval, timeout, iface
        self.max_seconds, self.session_clients = max_seconds, session_clients
        self.records: list[ProbeRecord] = []
        self.packets: list[Any] = []
        self.session_answers: list[SessionAnswer] = []
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
            if self.session_clients:
                clients = SessionClients(self.vip, SESSION_TIMEOUT_FACTOR * self.timeout,
                                         self.session_clients, max_seconds=self.max_seconds)
                stack.callback(self._stop_sessions, clients.start())
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

    def _stop_sessions(self, clients: SessionClients) -> None:
        self.session_answers = clients.stop()

    def _stop_sniffer(self, sniffer: Any) -> None:
        if sniffer.running:
            self.packets = list(sniffer.stop() or [])
