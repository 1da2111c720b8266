"""What bounds a web fault, read from the proxy's deployed site file (command + pure parser).

NGINX retries a request on another server (`proxy_next_upstream`) after a try that failed:
refused at once (Apache stopped), no answer to the SYN within `proxy_connect_timeout` (the
node is dead), or no answer to the request within `proxy_read_timeout` (Apache frozen, the
kernel still accepts the connection; or a request in flight when the node died). NGINX
never tries one server twice for one request, so with one faulted server a request pays at
most one such try: `max(connect, read)` plus a healthy answer. After `max_fails` failed tries
the server is skipped for `fail_timeout`, then tried again with one request.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

HEALTHY_ANSWER_S = 1.0  # a healthy server answers the app page well within this
PROBE_MARGIN_S = 1.0  # default probe timeout = bound + this: a slower request is measured
NGINX_DEFAULT_TIMEOUT = "60s"  # proxy_connect_timeout / proxy_read_timeout when unset
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TIME = re.compile(r"(\d+)(ms|s|m|h|d|w)?")


class SiteError(ValueError):
    """The site file lacks what the web drill needs (e.g. the faulted server)."""


def nginx_seconds(text: str) -> float:
    """An NGINX time ("5s", "500ms", "1m30s", "10") in seconds; ValueError if not one."""
    parts = _TIME.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not an NGINX time")
    return sum(int(n) * _UNITS[u or "s"] for n, u in parts)


@dataclass(frozen=True)
class NginxTimeouts:
    """The proxy's retry and passive health settings for the faulted server."""

    connect_s: float
    read_s: float
    max_fails: int
    fail_timeout_s: float
    next_upstream: tuple[str, ...]

    @property
    def try_bound_s(self) -> float:
        """The longest a try on the faulted server can last before NGINX gives up on it."""
        return max(self.connect_s, self.read_s)

    @property
    def latency_bound_s(self) -> float:
        """The slowest a client request may be: one failed try, then a healthy answer."""
        return self.try_bound_s + HEALTHY_ANSWER_S

    @property
    def probe_timeout_s(self) -> float:
        """The web drill's default probe timeout: above the bound, so nothing within it
        counts as failed and a request beyond it is measured, not cut off."""
        return self.latency_bound_s + PROBE_MARGIN_S

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "try_bound_s": self.try_bound_s,
                "latency_bound_s": self.latency_bound_s}


def _directive(text: str, name: str, default: str) -> str:
    found = re.search(rf"^\s*{name}\s+([^;]+);", text, re.MULTILINE)
    return found.group(1).strip() if found else default


def parse_site(text: str, upstream: str) -> NginxTimeouts:
    """The settings NGINX applies to `upstream` ("10.5.1.11:80") in the site file `text`;
    SiteError when the file has no `server upstream ...;` line."""
    server = re.search(rf"^\s*server\s+{re.escape(upstream)}(\s[^;]*)?;", text, re.MULTILINE)
    if server is None:
        raise SiteError(f"no `server {upstream}` in the upstream block")
    params = dict(p.split("=", 1) for p in (server.group(1) or "").split() if "=" in p)
    try:
        return NginxTimeouts(
            connect_s=nginx_seconds(_directive(text, "proxy_connect_timeout",
                                               NGINX_DEFAULT_TIMEOUT)),
            read_s=nginx_seconds(_directive(text, "proxy_read_timeout", NGINX_DEFAULT_TIMEOUT)),
            max_fails=int(params.get("max_fails", "1")),
            fail_timeout_s=nginx_seconds(params.get("fail_timeout", "10s")),
            next_upstream=tuple(_directive(text, "proxy_next_upstream", "error timeout").split()),
        )
    except ValueError as exc:
        raise SiteError(str(exc)) from None


def retries_on_failure(timeouts: NginxTimeouts) -> bool:
    """Whether NGINX retries a request elsewhere after a failed or timed-out try."""
    return {"error", "timeout"} <= set(timeouts.next_upstream)


def access_log_path(text: str) -> str:
    """The file the site logs its requests to (`access_log <path> <format>;`); SiteError
    when it logs none."""
    path = _directive(text, "access_log", "off").split()[0]
    if path == "off" or not path.startswith("/"):
        raise SiteError("no `access_log <file> <format>;`: the site logs no requests")
    return path
