"""The history of a database drill, judged the Jepsen way (pure: no I/O).

Writers insert unique rows; each operation is recorded (``Op``) with its writer, its row's
unique key, monotonic start and end times and an outcome: ``ok`` (the commit returned),
``fail`` (certainly not applied: refused, or never sent) or ``info`` (unknown: the connection
was lost after the statement was sent). Once the nodes converge, the drill reads back the
keys the primary holds (and the old primary's, read after the promotion, before it rejoins).
``analyze`` then says:

- ``lost``: ok writes missing on the primary (must be 0);
- ``phantom``: rows present that were neither ok nor info (must be 0);
- ``info_committed``: info writes that did commit (allowed: their outcome was unknown);
- ``split_brain``: ok writes acknowledged by the old primary once the new one was promoted
  (must be 0), and ``old_primary_only``: rows the old primary holds that the primary lacks;
- the ``write outage``: the largest gap between two successful writes, split into
  detection, confirmation, promotion, the wait for a replica to acknowledge again (only when
  the new primary opened waiting for one: ``watch --wait-for-replica``; a degraded one does
  not wait) and the clients' discovery of the new primary (``Marks``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("ok", "fail", "info")


@dataclass(frozen=True)
class Op:
    """One write: its unique key, monotonic start/end, outcome and the node it went to."""

    writer: int
    key: str
    start: float
    end: float
    outcome: str  # ok | fail | info
    node: str = ""  # the node written to (or last tried), as its inventory name
    error: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"{self.key}: outcome {self.outcome!r} is not one of {OUTCOMES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Op:
        return cls(int(data["writer"]), str(data["key"]), float(data["start"]),
                   float(data["end"]), str(data["outcome"]), str(data.get("node", "")),
                   str(data.get("error", "")))


@dataclass(frozen=True)
class Marks:
    """Monotonic times of the steps (None: did not happen). `promoted`: the new primary
    accepts writes (read_only OFF), the end of the failover or switchover."""

    fault: float | None = None
    suspected: float | None = None
    confirmed: float | None = None
    promoting: float | None = None  # the failover (or switchover) began
    promoted: float | None = None
    restoring: float | None = None  # the drill began to bring the faulted node back
    rejoined: float | None = None  # a replica acknowledges again (unless `degraded`, the
    #                                new primary's commits wait for one: no timeout)
    degraded: bool = False  # the new primary opened degraded: its commits wait for no replica


@dataclass(frozen=True)
class Outage:
    """The largest gap between two successful writes (ends), and its parts."""

    seconds: float
    since: float  # the last ok write before the gap ended here
    until: float  # the first ok write after it ended here
    detection_s: float | None = None  # fault -> the watcher suspects the primary
    confirmation_s: float | None = None  # suspected -> confirmed through the replica
    promotion_s: float | None = None  # confirmed (or switchover began) -> new primary open
    replica_wait_s: float | None = None  # new primary open -> a replica acknowledges again
    discovery_s: float | None = None  # then -> first ok write (the clients found it)

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class History:
    """What the history says (``analyze``)."""

    counts: dict[str, int]
    lost: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    info_committed: list[str] = field(default_factory=list)
    split_brain: list[str] = field(default_factory=list)
    old_primary_only: list[str] = field(default_factory=list)
    outage: Outage | None = None

    @property
    def clean(self) -> bool:
        """No lost, phantom or split-brain write, and nothing only on the old primary."""
        return not (self.lost or self.phantom or self.split_brain or self.old_primary_only)

    def problems(self) -> list[str]:
        out = []
        for name in ("lost", "phantom", "split_brain", "old_primary_only"):
            keys = getattr(self, name)
            if keys:
                out.append(f"{len(keys)} {name.replace('_', '-')} write(s): "
                           + ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else ""))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "lost": len(self.lost), "phantom": len(self.phantom),
                "info_committed": len(self.info_committed),
                "split_brain": len(self.split_brain),
                "old_primary_only": len(self.old_primary_only),
                "lost_keys": self.lost, "phantom_keys": self.phantom,
                "split_brain_keys": self.split_brain,
                "old_primary_only_keys": self.old_primary_only,
                "write_outage": self.outage.to_dict() if self.outage else None}


def analyze(ops: Iterable[Op], primary_rows: Iterable[str], *, old_primary: str | None = None,
            old_rows: Iterable[str] | None = None, marks: Marks = Marks()) -> History:
    """Judge a history against the keys the converged primary holds (see the module)."""
    ops = sorted(ops, key=lambda o: o.start)
    rows = set(primary_rows)
    ok = {o.key for o in ops if o.outcome == "ok"}
    info = {o.key for o in ops if o.outcome == "info"}
    counts = {name: sum(o.outcome == name for o in ops) for name in OUTCOMES}
    history = History(counts, lost=sorted(ok - rows), phantom=sorted(rows - ok - info),
                      info_committed=sorted(info & rows))
    if old_primary is not None and marks.promoted is not None:
        history.split_brain = sorted(o.key for o in ops if o.outcome == "ok"
                                     and o.node == old_primary and o.start >= marks.promoted)
    if old_rows is not None:
        history.old_primary_only = sorted(set(old_rows) - rows)
    history.outage = write_outage(ops, marks)
    return history


def write_outage(ops: Iterable[Op], marks: Marks = Marks()) -> Outage | None:
    """The largest gap between consecutive ok writes' ends (None with fewer than two), split
    by the marks that fall inside it."""
    ends = sorted(o.end for o in ops if o.outcome == "ok")
    if len(ends) < 2:
        return None
    since, until = max(zip(ends, ends[1:], strict=False), key=lambda p: p[1] - p[0])
    start = marks.promoting if marks.confirmed is None else marks.confirmed
    open_at = marks.promoted  # writes can complete again: promoted (and a replica acks)
    if marks.promoted is not None and marks.rejoined is not None and not marks.degraded:
        open_at = max(marks.promoted, marks.rejoined)
    return Outage(
        seconds=until - since, since=since, until=until,
        detection_s=_between(marks.fault, marks.suspected),
        confirmation_s=_between(marks.suspected, marks.confirmed),
        promotion_s=_between(start, marks.promoted),
        replica_wait_s=_between(marks.promoted, open_at) if open_at != marks.promoted else None,
        discovery_s=_between(open_at, _first_ok_after(ops, open_at)),
    )


def _between(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _first_ok_after(ops: Iterable[Op], when: float | None) -> float | None:
    if when is None:
        return None
    return min((o.end for o in ops if o.outcome == "ok" and o.end >= when), default=None)


def spread(values: list[float]) -> dict[str, float] | None:
    """min / median / p95 / max (nearest rank) of measured values; None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, -(-95 * len(ordered) // 100) - 1)
    return {"n": len(ordered), "min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[rank], "max": ordered[-1]}
