"""Pure parsers of the three log lines a request leaves behind (formats in the templates).

- proxy (templates/nginx/site.conf.j2): ``$msec $request_id $remote_addr "$request" $status
  $upstream_addr $upstream_status $upstream_response_time $request_time``; the upstream
  fields list every web server tried (", "-separated, " : " across internal redirects) or
  are "-" when nginx answered alone.
- web (templates/apache/site.conf.j2): ``%{sec}t.%{msec_frac}t %{X-Request-Id}i %a "%r" %>s
  %D <fqdn>``; "-" for a missing request id.
- app (templates/php/index.php.j2, in the site's Apache error log): ``<app>: trace
  request=<id> db-write node=<db server hostname> host=<db address> visit=<n>`` (or
  ``db-write failed host=<address>``, ``db-write skipped``).

Each parser returns None for a line it does not recognise (truncated, foreign, hand-made).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
# A quoted field as nginx and Apache write it: inner quotes and backslashes escaped.
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_PROXY = re.compile(rf"^(\d+\.\d+) (\S+) (\S+) {_QUOTED} (\d{{3}}|-) (.*)$")
_WEB = re.compile(rf"^(\d+\.\d+) (\S+) (\S+) {_QUOTED} (\d{{3}}|-) (\d+|-) (\S+)$")
_APP = re.compile(r"(\S+): trace request=(\S+) db-write (.*)$")
_PAIR = re.compile(r"(\w+)=([^\s,]+)")


def request_id(text: str) -> str | None:
    """The id when it is nginx's 32 hex characters; None for "-" or anything else."""
    return text if REQUEST_ID.match(text) else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _status(text: str) -> int | None:
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class Upstream:
    """One web server nginx tried for the request (status/time None when "-")."""

    address: str
    status: int | None
    seconds: float | None


@dataclass(frozen=True)
class ProxyLine:
    time: float  # epoch seconds, when nginx logged it (end of the request)
    request_id: str | None
    client: str
    request: str
    status: int | None
    upstreams: tuple[Upstream, ...]
    seconds: float | None  # $request_time


@dataclass(frozen=True)
class WebLine:
    time: float  # epoch seconds, when Apache received the request
    request_id: str | None
    client: str
    request: str
    status: int | None
    microseconds: int | None  # %D
    fqdn: str  # the web server that answered


@dataclass(frozen=True)
class AppLine:
    app: str
    request_id: str | None
    outcome: str  # "written", "failed" or "skipped"
    node: str | None  # the db server's own hostname (@@hostname) when written
    host: str | None  # the db address the app dialled
    visit: int | None


def _upstream_lists(text: str) -> list[list[str]] | None:
    """The four trailing fields (addresses, statuses, times, request time), each split into
    its items; None when the shape is wrong."""
    fields: list[list[str]] = []
    items: list[str] = []
    for token in text.replace(" : ", ", ").split(" "):
        if not token:
            return None
        items.append(token.rstrip(","))
        if not token.endswith(","):
            fields.append(items)
            items = []
    if items or len(fields) != 4 or len(fields[3]) != 1:
        return None
    return fields


def parse_proxy_line(line: str) -> ProxyLine | None:
    """An nginx access log line of the trace format, or None."""
    match = _PROXY.match(line.rstrip("\r\n"))
    if not match:
        return None
    fields = _upstream_lists(match.group(6))
    if fields is None:
        return None
    addresses, statuses, times, (total,) = fields
    upstreams = tuple(
        Upstream(address, _status(statuses[i]) if i < len(statuses) else None,
                 _number(times[i]) if i < len(times) else None)
        for i, address in enumerate(addresses) if address != "-")
    return ProxyLine(float(match.group(1)), request_id(match.group(2)), match.group(3),
                     match.group(4), _status(match.group(5)), upstreams, _number(total))


def parse_web_line(line: str) -> WebLine | None:
    """An Apache access log line of the trace format, or None."""
    match = _WEB.match(line.rstrip("\r\n"))
    if not match:
        return None
    micro = match.group(6)
    return WebLine(float(match.group(1)), request_id(match.group(2)), match.group(3),
                   match.group(4), _status(match.group(5)),
                   int(micro) if micro.isdigit() else None, match.group(7))


def parse_app_line(line: str) -> AppLine | None:
    """The app's trace line (anywhere in an Apache error log line), or None."""
    match = _APP.search(line.rstrip("\r\n"))
    if not match:
        return None
    rest = match.group(3)
    pairs = dict(_PAIR.findall(rest))
    outcome = "written" if "node" in pairs else rest.split(" ", 1)[0].rstrip(",")
    visit = pairs.get("visit", "")
    return AppLine(match.group(1), request_id(match.group(2)), outcome, pairs.get("node"),
                   pairs.get("host"), int(visit) if visit.isdigit() else None)


def line_time(line: str) -> float | None:
    """The epoch time at the start of an access log line (both formats), or None."""
    head = line.split(" ", 1)[0]
    return _number(head) if re.match(r"^\d+\.\d+$", head) else None
