"""Client-side probes from the controller: HTTP requests to the VIP at a fixed cadence.

Every request is a new TCP connection with a short timeout, sent on schedule whether or not
the previous one answered (a thread pool keeps the cadence during an outage). The loop is
bounded in count and in time. The caller checks the lab route before starting it.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

SERVED_BY = "X-Served-By"


@dataclass(frozen=True)
class ProbeRecord:
    """One client request through the VIP."""

    time: float  # send time, epoch seconds
    ok: bool
    latency_s: float | None = None
    server: str | None = None  # web server that answered (when ok)
    error: str | None = None  # why it failed (when not ok)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeRecord:
        """Build a record from a dict with the field names as keys."""
        latency = data.get("latency_s")
        return cls(
            time=float(data["time"]),
            ok=bool(data["ok"]),
            latency_s=None if latency is None else float(latency),
            server=data.get("server"),
            error=data.get("error"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-serialisable dict."""
        return asdict(self)


def http_probe(address: str, timeout: float, path: str = "/", port: int = 80) -> ProbeRecord:
    """One GET to address:port; ok when status 200 with an X-Served-By header."""
    sent = time.time()
    started = time.monotonic()
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "tp5-probe"})
        resp = conn.getresponse()
        resp.read()
        server = resp.getheader(SERVED_BY)
        latency = time.monotonic() - started
        if resp.status != 200 or not server:
            return ProbeRecord(sent, False, latency, None, f"HTTP {resp.status}")
        return ProbeRecord(sent, True, latency, server.split()[0], None)
    except (OSError, http.client.HTTPException) as exc:
        reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return ProbeRecord(sent, False, time.monotonic() - started, None, reason)
    finally:
        conn.close()


class ProbeLoop:
    """Background probe loop: `start()`, then `stop()` returns the records in send order."""

    def __init__(self, address: str, interval: float = 0.02, timeout: float = 0.3,
                 max_seconds: float = 120.0) -> None:
        self.address, self.interval, self.timeout = address, interval, timeout
        self.max_count = int(max_seconds / interval) + 1
        self._stop = threading.Event()
        self._futures: list[Future[ProbeRecord]] = []
        self._pool = ThreadPoolExecutor(max_workers=int(timeout / interval) + 4)
        self._thread = threading.Thread(target=self._run, name="probe-loop", daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set() and len(self._futures) < self.max_count:
            self._futures.append(self._pool.submit(http_probe, self.address, self.timeout))
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> ProbeLoop:
        self._thread.start()
        return self

    def records_so_far(self) -> list[ProbeRecord]:
        return [f.result() for f in list(self._futures) if f.done()]

    def stop(self) -> list[ProbeRecord]:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return sorted((f.result() for f in self._futures), key=lambda r: r.time)
