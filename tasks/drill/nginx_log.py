"""The proxies' access log (templates/nginx/site.conf.j2, format `<app>_trace`), pure.

One line per request::

    $msec $request_id $remote_addr "$request" $status $upstream_addr $upstream_status
    $upstream_response_time $request_time

`$msec` is when the request ended (epoch seconds, ms). The three upstream fields are lists
with one item per server tried, separated by ", " (and " : " between upstream groups), e.g.
`10.5.1.11:80, 10.5.1.12:80 504, 200 1.001, 0.004`; an item is `-` when there is no value
(no answer). A try's send time is estimated as the request's start plus the times of the
tries before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_ITEM = r"[^\s,]+"
_LIST = rf"{_ITEM}(?:(?:, | : ){_ITEM})*"
LINE = re.compile(
    rf'^(?P<msec>\d+(?:\.\d+)?) (?P<id>\S+) (?P<client>\S+) "(?P<request>[^"]*)" '
    rf"(?P<status>\d{{3}}) (?P<addrs>{_LIST}) (?P<statuses>{_LIST}) (?P<times>{_LIST}) "
    rf"(?P<rtime>\d+(?:\.\d+)?)$")
_SEPARATOR = re.compile(r", | : ")


@dataclass(frozen=True)
class UpstreamTry:
    """One try of a request on one server."""

    addr: str  # "10.5.1.11:80" (or the upstream's name when no server could be chosen)
    status: int | None  # None: no answer (connect or read failed, timed out)
    seconds: float | None
    sent: float  # estimated send time, epoch seconds

    @property
    def ok(self) -> bool:
        """The server answered (a 5xx it sent counts as a failure, as NGINX counts it)."""
        return self.status is not None and self.status < 500

    @property
    def ended(self) -> float:
        return self.sent + (self.seconds or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"addr": self.addr, "status": self.status, "seconds": self.seconds,
                "sent": self.sent}


@dataclass(frozen=True)
class AccessLine:
    """One request as a proxy logged it."""

    proxy: str
    end: float
    request_id: str
    client: str
    request: str
    status: int
    request_time: float
    tries: tuple[UpstreamTry, ...]

    @property
    def start(self) -> float:
        return self.end - self.request_time


def _number(item: str, kind: type[int] | type[float]) -> Any:
    return None if item == "-" else kind(item)


def parse_line(line: str, proxy: str = "") -> AccessLine | None:
    """The request logged on `line`, or None if the line is not in the trace format."""
    match = LINE.match(line.strip())
    if match is None:
        return None
    addrs, statuses, times = (_SEPARATOR.split(match[k]) for k in ("addrs", "statuses", "times"))
    if not len(addrs) == len(statuses) == len(times):
        return None
    try:
        codes = [_number(s, int) for s in statuses]
        seconds = [_number(t, float) for t in times]
    except ValueError:
        return None
    end, request_time = float(match["msec"]), float(match["rtime"])
    sent, tries = end - request_time, []
    for addr, code, took in zip(addrs, codes, seconds, strict=True):
        if addr != "-":
            tries.append(UpstreamTry(addr, code, took, sent))
        sent += took or 0.0
    return AccessLine(proxy, end, match["id"], match["client"], match["request"],
                      int(match["status"]), request_time, tuple(tries))


def parse_log(text: str, proxy: str = "") -> tuple[list[AccessLine], int]:
    """The requests in a log's text, by start time, and the number of lines not understood."""
    lines, unparsed = [], 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        parsed = parse_line(raw, proxy)
        if parsed is None:
            unparsed += 1
        else:
            lines.append(parsed)
    return sorted(lines, key=lambda a: a.start), unparsed


def tries_on(lines: Iterable[AccessLine], addr: str) -> list[UpstreamTry]:
    """Every try sent to `addr`, by send time."""
    return sorted((t for a in lines for t in a.tries if t.addr == addr), key=lambda t: t.sent)
