"""GTID positions compared exactly (pure).

A position is MariaDB's list of ``domain-server-sequence``, one per domain. ``MASTER_GTID_WAIT``
and ``gtid_reached`` (tasks.db.facts) compare sequence numbers only: a node that committed its
own ``0-2-10`` would look as far as a primary at ``0-1-10``. The functions here also compare
the server ids, so a diverged node is never taken for an up-to-date one.
"""

from __future__ import annotations

from dataclasses import dataclass


class GtidError(ValueError):
    """A GTID position that does not parse."""


@dataclass(frozen=True, order=True)
class Gtid:
    domain: int
    server: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


def parse(text: str | None) -> dict[int, Gtid]:
    """'0-1-12,1-2-3' to {domain: Gtid}; '' and None give {}."""
    result: dict[int, Gtid] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        parts = item.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise GtidError(f"not a GTID: {item!r} in {text!r}")
        gtid = Gtid(*(int(p) for p in parts))
        result[gtid.domain] = gtid
    return result


def normalize(text: str | None) -> str:
    """The position with its domains sorted, so equal positions give equal strings."""
    return ",".join(str(g) for _, g in sorted(parse(text).items()))


def same(a: str | None, b: str | None) -> bool:
    """Exactly the same position (every domain, server id and sequence)."""
    return normalize(a) == normalize(b)


def contains(have: str | None, other: str | None) -> bool:
    """True when a node at ``have`` holds everything of a node at ``other`` as far as the
    positions tell: in every domain of ``other``, ``have`` is further, or at the same
    sequence written by the same server. (Equal sequences of different servers: diverged.)"""
    mine = parse(have)
    for domain, theirs in parse(other).items():
        own = mine.get(domain)
        if own is None or own.seq < theirs.seq:
            return False
        if own.seq == theirs.seq and own.server != theirs.server:
            return False
    return True


def ahead(have: str | None, other: str | None) -> list[str]:
    """The domains where ``have`` holds transactions ``other`` lacks, as 'have vs other'."""
    theirs = parse(other)
    out = []
    for domain, own in sorted(parse(have).items()):
        them = theirs.get(domain)
        if them is None or own.seq > them.seq or (own.seq == them.seq
                                                   and own.server != them.server):
            out.append(f"{own} vs {them or 'nothing'}")
    return out
