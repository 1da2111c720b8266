"""Pure: the log lines of each request id put together into the path it took.

A request's proxy is the node whose nginx log holds its id, its web server the one whose
Apache log does (its own fqdn in the line), its db node the one the app says it wrote to (the db
server's own @@hostname, read on the connection that wrote), all turned into inventory names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tasks.trace.parse import AppLine, ProxyLine, WebLine
from tasks.trace.paths import APP, PROXY, WEB


@dataclass(frozen=True)
class Names:
    """Inventory names by fqdn, short name, address and address:port."""

    known: dict[str, str]

    @classmethod
    def of(cls, hosts: Iterable[tuple[str, str, str, int | None]]) -> Names:
        """From (name, fqdn, address, port) tuples."""
        known: dict[str, str] = {}
        for name, fqdn, address, port in hosts:
            known.update({name: name, fqdn: name, address: name})
            if port:
                known[f"{address}:{port}"] = name
        return cls(known)

    def name(self, text: str | None) -> str | None:
        """The inventory name for an fqdn, hostname, address or address:port (else as is)."""
        if not text:
            return None
        for key in (text, text.split(".", 1)[0], text.rsplit(":", 1)[0]):
            if key in self.known:
                return self.known[key]
        return text


@dataclass(frozen=True)
class Sent:
    """One request sent through the VIP, as the client saw it (only used to know its id)."""

    time: float
    request_id: str | None
    status: int | None
    error: str | None = None


@dataclass(frozen=True)
class Seen:
    """One parsed log line and the node whose log held it."""

    node: str
    line: ProxyLine | WebLine | AppLine


@dataclass
class RequestTrace:
    """What the logs say about one request: (node, line) for each line of its id."""

    sent: Sent
    names: Names
    proxy: list[tuple[str, ProxyLine]] = field(default_factory=list)
    web: list[tuple[str, WebLine]] = field(default_factory=list)
    app: list[tuple[str, AppLine]] = field(default_factory=list)

    def add(self, seen: Seen) -> None:
        if isinstance(seen.line, ProxyLine):
            self.proxy.append((seen.node, seen.line))
        elif isinstance(seen.line, WebLine):
            self.web.append((seen.node, seen.line))
        else:
            self.app.append((seen.node, seen.line))

    @property
    def proxy_line(self) -> ProxyLine | None:
        return self.proxy[-1][1] if self.proxy else None

    @property
    def proxy_node(self) -> str | None:
        return self.proxy[-1][0] if self.proxy else None

    def answering(self) -> tuple[str, WebLine] | None:
        """(node, Apache line) of the web server that answered: the last one nginx tried,
        else the latest Apache line of the id."""
        if not self.web:
            return None
        upstreams = self.proxy_line.upstreams if self.proxy_line else ()
        target = self.names.name(upstreams[-1].address) if upstreams else None
        matching = [s for s in self.web if self.names.name(s[1].fqdn) == target]
        return (matching or sorted(self.web, key=lambda s: s[1].time))[-1]

    @property
    def web_node(self) -> str | None:
        seen = self.answering()
        return self.names.name(seen[1].fqdn) if seen else None

    def app_line(self) -> AppLine | None:
        """The app's line on the web server that answered (else the last one seen)."""
        seen = self.answering()
        lines = [s for s in self.app if seen is None or s[0] == seen[0]] or self.app
        return lines[-1][1] if lines else None

    @property
    def db_node(self) -> str | None:
        app = self.app_line()
        if app is None or app.outcome != "written":
            return None
        return self.names.name(app.node)

    @property
    def complete(self) -> bool:
        """Proxy, web server and db node all read from the logs."""
        return None not in (self.proxy_node, self.web_node, self.db_node)

    @property
    def path(self) -> str:
        app = self.app_line()
        db = self.db_node or (f"db {app.outcome}" if app else "?")
        return " -> ".join([self.proxy_node or "?", self.web_node or "?", db])

    def notes(self) -> list[str]:
        """Status and times, from the logs; then what is missing or odd."""
        notes = []
        line = self.proxy_line
        if line is not None:
            notes.append(str(line.status or "-"))
            if line.seconds is not None:
                notes.append(f"proxy {line.seconds * 1000:.0f} ms")
            tried = [f"{self.names.name(u.address)} {u.status or '-'}"
                     for u in line.upstreams[:-1]]
            if tried:
                notes.append("tried first: " + ", ".join(tried))
        seen = self.answering()
        if seen is not None and seen[1].microseconds is not None:
            notes.append(f"web {seen[1].microseconds / 1000:.1f} ms")
        app = self.app_line()
        if app is not None and app.visit is not None:
            notes.append(f"visit {app.visit}")
        missing = [k for k, v in ((PROXY, self.proxy), (WEB, self.web), (APP, self.app)) if not v]
        if missing:
            notes.append("not in the " + "/".join(missing) + " log")
        return notes

    def describe(self) -> str:
        """`id  rp1 -> web2 -> db1  (200, proxy 4 ms, web 3.1 ms, visit 12)`."""
        if self.sent.request_id is None:
            return f"{'-' * 32}  no answer through the VIP ({self.sent.error or 'no id'})"
        return f"{self.sent.request_id}  {self.path}  ({', '.join(self.notes())})"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.sent.request_id, "sent": self.sent.time,
                "client_status": self.sent.status, "client_error": self.sent.error,
                "path": self.path, "complete": self.complete,
                "proxy": self._proxy_dict(), "web": self._web_dict(), "db": self._db_dict()}

    def _proxy_dict(self) -> dict[str, Any] | None:
        line = self.proxy_line
        if line is None:
            return None
        return {"node": self.proxy_node, "status": line.status, "seconds": line.seconds,
                "time": line.time,
                "upstreams": [{"address": u.address, "node": self.names.name(u.address),
                               "status": u.status, "seconds": u.seconds}
                              for u in line.upstreams]}

    def _web_dict(self) -> dict[str, Any] | None:
        seen = self.answering()
        if seen is None:
            return None
        node, line = seen
        return {"node": self.web_node, "log_of": node, "fqdn": line.fqdn, "status": line.status,
                "microseconds": line.microseconds, "time": line.time}

    def _db_dict(self) -> dict[str, Any] | None:
        app = self.app_line()
        if app is None:
            return None
        return {"node": self.db_node, "outcome": app.outcome, "server_hostname": app.node,
                "address": app.host, "visit": app.visit}


def join_traces(sent: list[Sent], seen: Iterable[Seen], names: Names) -> list[RequestTrace]:
    """One RequestTrace per request sent, in send order, with every line of its id."""
    traces = [RequestTrace(s, names) for s in sent]
    by_id = {t.sent.request_id: t for t in traces if t.sent.request_id}
    for item in seen:
        trace = by_id.get(item.line.request_id)
        if trace is not None:
            trace.add(item)
    return traces


def missing_ids(traces: list[RequestTrace]) -> list[str]:
    """Ids whose proxy, web or app line has not been read yet."""
    return [t.sent.request_id for t in traces
            if t.sent.request_id and not (t.proxy and t.web and t.app)]
