"""Sessions seen by cookie-jar clients, pure: did each client's hit counter keep counting?

A client keeps its cookie and sends one request at a time; the page answers
"session: <id> hits=<n>". Its series of answers should count 1, 2, 3, ... under the same id.
A **restart** is an answer whose id differs from the previous one, or whose count is not
above it: the session (or its last saved hits) is gone. A **lost session** is a client with at
least one restart. A count that jumps (3 then 5) is no loss: an answer was lost in flight after
the session was saved (NGINX retried the request elsewhere, or the client gave up waiting).
An answer without a session ("session: unavailable (...)") or a failed request is counted
apart: the client keeps its cookie and its session. Used by the web drill; the database drill
can feed it its own clients' answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SESSION_LINE = re.compile(r"(?P<id>[0-9A-Za-z,-]{1,256}) hits=(?P<hits>[0-9]{1,9})")


def parse_session(value: str | None) -> tuple[str, int] | None:
    """(id, hits) of the page's session value "<id> hits=<n>"; None for anything else."""
    match = SESSION_LINE.fullmatch(value or "")
    return (match["id"], int(match["hits"])) if match else None


@dataclass(frozen=True)
class SessionAnswer:
    """One request of a cookie-jar client (`client`: its number)."""

    client: int
    time: float  # send time, epoch seconds
    ok: bool  # an HTTP 200 answer from a web server
    session: str | None = None  # the session id shown (None: no session in the answer)
    hits: int | None = None
    server: str | None = None  # the web server that answered
    latency_s: float | None = None
    error: str | None = None  # why the request failed, or why the answer has no session

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionAnswer:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Restart:
    """A client's counter that did not continue: what it showed before and then."""

    client: int
    time: float
    before: tuple[str, int]  # (id, hits) of the previous answer
    after: tuple[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SessionStats:
    """Every client's series judged: `lost` is the number of clients with a restart."""

    clients: int
    answers: int  # answers that showed a session
    without_session: int  # answers with no session (store unavailable)
    failed: int  # requests that got no answer from a web server
    skipped_hits: int  # hits never seen by the client (answers lost after the save)
    lost: int
    restarts: tuple[Restart, ...] = ()
    servers: dict[int, tuple[str, ...]] = field(default_factory=dict)  # client -> servers

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = {str(k): list(v) for k, v in self.servers.items()}
        return data


def restarts_of(series: Iterable[tuple[str, int]]) -> list[int]:
    """Indexes in one client's (id, hits) series (in send order) where the counter restarted:
    another id, or a count not above the previous one."""
    found, previous = [], None
    for index, (sid, hits) in enumerate(series):
        if previous is not None and (sid != previous[0] or hits <= previous[1]):
            found.append(index)
        previous = (sid, hits)
    return found


def skipped_of(series: Iterable[tuple[str, int]]) -> int:
    """Hits the client never saw: the jumps of the count under one id (3 then 5: one)."""
    skipped, previous = 0, None
    for sid, hits in series:
        if previous is not None and sid == previous[0] and hits > previous[1] + 1:
            skipped += hits - previous[1] - 1
        previous = (sid, hits)
    return skipped


def session_stats(answers: Iterable[SessionAnswer]) -> SessionStats:
    """Judge every client's answers (any order: each client's are sorted by send time)."""
    per_client: dict[int, list[SessionAnswer]] = {}
    for answer in answers:
        per_client.setdefault(answer.client, []).append(answer)
    restarts: list[Restart] = []
    shown = without = failed = skipped = 0
    servers: dict[int, tuple[str, ...]] = {}
    for client, mine in sorted(per_client.items()):
        mine.sort(key=lambda a: a.time)
        counted = [a for a in mine if a.ok and a.session is not None and a.hits is not None]
        series = [(str(a.session), int(a.hits or 0)) for a in counted]
        restarts += [Restart(client, counted[i].time, series[i - 1], series[i])
                     for i in restarts_of(series)]
        shown += len(counted)
        without += sum(a.ok and a.session is None for a in mine)
        failed += sum(not a.ok for a in mine)
        skipped += skipped_of(series)
        servers[client] = tuple(sorted({a.server for a in counted if a.server}))
    return SessionStats(clients=len(per_client), answers=shown, without_session=without,
                        failed=failed, skipped_hits=skipped,
                        lost=len({r.client for r in restarts}), restarts=tuple(restarts),
                        servers=servers)
