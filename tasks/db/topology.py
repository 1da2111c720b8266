"""Who is the database tier's primary, from what the nodes say (pure).

The inventory's ``db_role`` is only the initial role. The actual primary is the one writable
node that replicates from no one. ``decide`` tells a deploy what to converge toward:

- exactly one such node: it is the primary, whatever the inventory says (a note says so when
  they disagree); a live primary is never demoted to match the inventory;
- two or more: refuse (two nodes accept writes; a human must fence one);
- none: every node boots read-only, so this is a first deploy (no node replicates from
  anyone: the inventory's primary is opened) or a restarted primary (the node the replicas
  follow). That node is opened only when every other node answered and holds nothing it
  lacks (GTID positions): opening it then loses no acknowledged write. Otherwise refuse and
  name the command to run (``runbooks/db_failover.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.db import gtid

UP, FRESH, DOWN = "up", "fresh", "down"


@dataclass(frozen=True)
class Probe:
    """One db node as the controller sees it.

    state: ``up`` (answered), ``fresh`` (MariaDB refuses the controller's admin account: never
    deployed, holds no data) or ``down`` (no answer). ``source``: the address its replication
    is configured to follow ('' when none).
    """

    name: str
    address: str
    state: str
    read_only: bool = True
    source: str = ""
    binlog_pos: str = ""
    current_pos: str = ""
    error: str = ""

    @property
    def writable(self) -> bool:
        return self.state == UP and not self.read_only


@dataclass(frozen=True)
class Decision:
    """The primary to converge toward, and whether it must be opened for writes first.

    ``refusal``: no primary can be named (every host fails). ``open_refusal``: the primary is
    read-only and opening it is unsafe (its own deploy fails; a replica waits for it, bounded).
    """

    primary: str | None
    open_primary: bool = False
    notes: list[str] = field(default_factory=list)
    refusal: str = ""
    open_refusal: str = ""


def _note(primary: str, inventory_primary: str) -> list[str]:
    if primary == inventory_primary:
        return []
    return [f"the inventory names {inventory_primary} as the primary but the actual primary "
            f"is {primary} (the one writable node): converging toward {primary}, not "
            f"demoting it (update db_role in the inventory)"]


def _candidate(probes: list[Probe], inventory_primary: str) -> tuple[str | None, str]:
    """The node to open when none is writable: (name, '') or (None, why not)."""
    sources = {p.source for p in probes if p.state == UP and p.source}
    if not sources:
        return inventory_primary, ""
    by_address = {p.address: p.name for p in probes}
    if len(sources) == 1 and next(iter(sources)) in by_address:
        return by_address[next(iter(sources))], ""
    return None, f"the replicas follow different or unknown sources: {sorted(sources)}"


def _open_refusal(name: str, probes: list[Probe]) -> str:
    """Why opening `name` could lose or fork data ('' when it is safe)."""
    me = next(p for p in probes if p.name == name)
    if me.state != UP:
        return f"{name} is {me.state}"
    for other in probes:
        if other.name == name:
            continue
        if other.state == DOWN:
            return f"{other.name} does not answer ({other.error}): it may hold newer writes"
        if other.state == UP and not gtid.contains(me.binlog_pos, other.current_pos):
            return (f"{other.name} holds transactions {name} lacks "
                    f"({', '.join(gtid.ahead(other.current_pos, me.binlog_pos))})")
    return ""


def _next(name: str, probes: list[Probe]) -> str:
    """What to run when `name` may not be reopened: promote the node that holds all of it."""
    me = next(p for p in probes if p.name == name)
    ahead = [p.name for p in probes if p.name != name and p.state == UP
             and gtid.contains(p.current_pos, me.binlog_pos)
             and not gtid.contains(me.binlog_pos, p.current_pos)]
    if me.state == UP and len(ahead) == 1:
        return (f"{ahead[0]} holds everything {name} has: promote it with "
                f"runbooks/db_failover.py failover --to {ahead[0]}, then "
                f"runbooks/db_failover.py rejoin {name}")
    return "Run runbooks/db_status.py, then runbooks/db_failover.py failover or rejoin"


def decide(probes: list[Probe], inventory_primary: str) -> Decision:
    """What a deploy converges toward (see the module's docstring)."""
    writable = [p for p in probes if p.writable and not p.source]
    if len(writable) > 1:
        names = ", ".join(p.name for p in writable)
        return Decision(None, refusal=f"{names} all accept writes: fence all but one "
                                      "(SET GLOBAL read_only = ON), then check with "
                                      "runbooks/db_status.py")
    if writable:
        return Decision(writable[0].name, notes=_note(writable[0].name, inventory_primary))
    name, why = _candidate(probes, inventory_primary)
    if name is None:
        return Decision(None, refusal=f"no node accepts writes and {why}: see "
                                      "runbooks/db_status.py")
    refusal = _open_refusal(name, probes)
    if refusal:
        refusal = f"no node accepts writes; not opening {name}: {refusal}. " + _next(name, probes)
    return Decision(name, open_primary=True, notes=_note(name, inventory_primary),
                    open_refusal=refusal)
