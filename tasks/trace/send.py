"""Requests through the VIP from this machine, keeping only what tells them apart: the
request id nginx returns (X-Request-Id). Where they went is read from the logs, not here."""

from __future__ import annotations

import http.client
import time

from tasks.trace.join import Sent
from tasks.trace.parse import request_id

REQUEST_ID_HEADER = "X-Request-Id"


def send_request(address: str, timeout: float = 3.0, port: int = 80) -> Sent:
    """One GET / on a new connection; its request id (None when there was no answer)."""
    sent = time.time()
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close", "User-Agent": "tp5-trace"})
        resp = conn.getresponse()
        resp.read()
        rid = request_id(resp.getheader(REQUEST_ID_HEADER) or "")
        return Sent(sent, rid, resp.status, None if rid else "no X-Request-Id in the answer")
    except (OSError, http.client.HTTPException) as exc:
        reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return Sent(sent, None, None, reason)
    finally:
        conn.close()


def send_requests(address: str, count: int, timeout: float = 3.0) -> list[Sent]:
    """`count` GETs one after the other (bounded by count x timeout)."""
    return [send_request(address, timeout) for _ in range(count)]
