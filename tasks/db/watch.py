"""The failover watcher: probe the primary, confirm its death through the replica, fail over.

Decision (``Detector``, pure): the primary is *suspected* after ``misses`` probes in a row
got no answer (each bounded by ``probe_timeout``); the suspicion is *confirmed* only when
the replica has lost it too: its IO thread is not running, or it heard nothing from it (no
event, no heartbeat: the heartbeat is 1 s) for ``silence`` seconds. A primary that the
replica still hears is never failed over (the controller alone lost it: a partition).

Action (``Watcher``): record the failover in the state directory (``JOURNAL``), stop the
replica's IO thread (confirmed silent: nothing more can come; never restarted before the
promotion, which would purge the relay log), then run the same ``failover`` as the manual
command (tasks.db.failover: it checks everything again and refuses when unsure), degraded
by default (``WatchSettings.degrade``): with two nodes, a promoted node that waited for a
replica's acknowledgement would take no write until the dead node is back.

One watcher at a time: ``watch_lock`` (a lock file in the state directory; a second watcher
waits). A journal left by a watcher that died mid-failover is finished first
(``resume_failover``): the failover again while the target still has its replication,
the epoch row and the opening when it died after the replication was reset, or a refusal
(nothing changed) when the old primary answers again.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from nornir.core import Nornir

from tasks.core import state
from tasks.db.failover import failover, finish_promotion
from tasks.db.insync import record_in_sync
from tasks.db.sql import DbError, DbTarget, query
from tasks.db.status import cluster_status
from tasks.db.tier import Refused, Steps, Tier

LOCK_FILE = "db_watch.lock"
JOURNAL = "db_watch_failover.json"
HEALTHY, SUSPECT, CONFIRMED, UNCONFIRMABLE = "healthy", "suspect", "confirmed", "unconfirmable"


@dataclass(frozen=True)
class WatchSettings:
    """The watcher's bounds (seconds)."""

    interval: float = 0.2  # between two probes of the primary
    probe_timeout: float = 0.5  # one probe (connect or read)
    misses: int = 3  # probes in a row without an answer: suspected
    silence: float = 2.0  # the replica heard nothing this long: it lost the primary too
    degrade: bool = True  # the promoted node takes writes without a copy until the old rejoins
    record_every: float = 5.0  # while healthy, the tier is recorded in sync this often


STATUS_TIMEOUT = 2.0  # reading a node's status: a frozen node must not hold the failover


def watcher_tier(nr: Nornir, target: DbTarget, settings: WatchSettings) -> Tier:
    """The db tier as the watcher reads it: a dead node's connect bounded by the probe's
    timeout, a frozen node's status read by STATUS_TIMEOUT."""
    return Tier(nr, target, connect_timeout=settings.probe_timeout,
                status_timeout=STATUS_TIMEOUT)


@dataclass(frozen=True)
class ReplicaView:
    """What the replica says of its primary: IO thread state, and counters that change
    whenever it hears from it (heartbeats received, relay position)."""

    io_running: str
    heard: tuple[Any, ...]


@dataclass
class Detector:
    """The pure decision: feed it probes and replica samples, ask `state(now)`."""

    settings: WatchSettings
    missed: int = 0
    suspected_at: float | None = None
    view: ReplicaView | None = None
    heard_at: float | None = None  # when the replica's counters last changed

    def primary(self, now: float, answered: bool) -> None:
        if answered:
            self.missed, self.suspected_at = 0, None
            return
        self.missed += 1
        if self.missed >= self.settings.misses and self.suspected_at is None:
            self.suspected_at = now

    def replica(self, now: float, view: ReplicaView | None) -> None:
        if view is not None and (self.view is None or view.heard != self.view.heard):
            self.heard_at = now
        self.view = view

    def state(self, now: float) -> str:
        if self.suspected_at is None:
            return HEALTHY
        if self.view is None:
            return UNCONFIRMABLE  # the replica cannot be asked: never act on one side alone
        if self.view.io_running != "Yes":
            return CONFIRMED
        silent = self.heard_at is not None and now - self.heard_at >= self.settings.silence
        return CONFIRMED if silent else SUSPECT


class Nodes(Protocol):
    """What the watcher needs of the db tier (``TierNodes``; fakes in the unit tests)."""

    def roles(self) -> tuple[str, str]: ...  # (the primary to watch, its replica)
    def primary_answers(self, name: str) -> bool: ...
    def replica_view(self, name: str) -> ReplicaView | None: ...
    def stop_io(self, name: str) -> bool: ...  # True when it was running
    def start_io(self, name: str) -> None: ...
    def failover(self, to: str, steps: Steps) -> None: ...
    def seen_healthy(self) -> None: ...  # record the tier in sync if it is (in the background)
    def close(self) -> None: ...


@dataclass
class Event:
    """One step of the watcher, with its monotonic time."""

    at: float
    kind: str  # watching, suspected, confirmed, promoting, promoted, refused, failed, ...
    text: str


@dataclass
class Watcher:
    """Runs the detection loop and acts once confirmed (see the module's docstring)."""

    nodes: Nodes
    settings: WatchSettings = field(default_factory=WatchSettings)
    steps: Steps = field(default_factory=Steps)
    clock: Callable[[], float] = time.monotonic
    events: list[Event] = field(default_factory=list)
    failovers: int = 0

    def log(self, kind: str, text: str) -> None:
        self.events.append(Event(self.clock(), kind, text))
        self.steps.say(f"watch: {kind}: {text}")

    def first(self, kind: str) -> float | None:
        return next((e.at for e in self.events if e.kind == kind), None)

    def run(self, stop: threading.Event, duration: float, max_failovers: int = 1) -> int:
        """Watch until `duration` s passed, `max_failovers` were done or `stop` is set; the
        number of failovers done."""
        end = self.clock() + duration
        while not stop.is_set() and self.clock() < end and self.failovers < max_failovers:
            roles = self._roles(stop, end)
            if roles is None:
                break
            self._watch(*roles, stop, end)
        return self.failovers

    def _roles(self, stop: threading.Event, end: float) -> tuple[str, str] | None:
        """The primary and its replica; after a failover, wait (bounded) for a replica."""
        while True:
            try:
                primary, replica = self.nodes.roles()
            except Refused as exc:
                if not self.failovers:
                    raise
                if self.first("waiting") is None or self.events[-1].kind != "waiting":
                    self.log("waiting", f"{exc}")
                if stop.wait(1.0) or self.clock() >= end:
                    return None
                continue
            self.log("watching", f"primary {primary}, confirmed through {replica}; probe "
                                 f"every {self.settings.interval:g} s")
            return primary, replica

    def _watch(self, primary: str, replica: str, stop: threading.Event, end: float) -> None:
        """Probe until a failover was done (or refused), the end, or `stop`."""
        detector, said, record_at = Detector(self.settings), HEALTHY, self.clock()
        while not stop.is_set() and self.clock() < end:
            now = self.clock()
            detector.primary(now, self.nodes.primary_answers(primary))
            detector.replica(self.clock(), self.nodes.replica_view(replica))
            verdict = detector.state(self.clock())
            if verdict == HEALTHY and now >= record_at:
                # A replica that restarted and caught up is promotable again only once seen
                # in sync since (tasks.db.insync): the watcher is the one always looking.
                self.nodes.seen_healthy()
                record_at = now + self.settings.record_every
            if verdict != said:
                self._note(verdict, detector, primary, replica)
                said = verdict
            if verdict == CONFIRMED:
                self.act(primary, replica)
                return
            stop.wait(max(0.0, now + self.settings.interval - self.clock()))

    def _note(self, verdict: str, detector: Detector, primary: str, replica: str) -> None:
        if verdict == HEALTHY:
            self.log("healthy", f"{primary} answers again")
            return
        if self.events[-1].kind not in ("suspected", "unconfirmable"):
            self.log("suspected", f"{primary}: {detector.missed} probes in a row unanswered "
                                  f"({self.settings.probe_timeout:g} s each)")
        if verdict == UNCONFIRMABLE:
            self.log("unconfirmable", f"{replica} cannot be asked: not acting on one side "
                                      "alone")
        elif verdict == CONFIRMED:
            view = detector.view
            why = (f"its IO thread is {view.io_running}" if view and view.io_running != "Yes"
                   else f"it heard nothing for {self.settings.silence:g} s")
            self.log("confirmed", f"{replica} lost {primary} too ({why})")

    def act(self, primary: str, replica: str) -> None:
        """Journal, stop the replica's IO thread, fail over (refusals logged)."""
        write_journal(primary, replica)
        stopped = False
        self.log("promoting", f"failover {primary} -> {replica}")
        try:
            stopped = self.nodes.stop_io(replica)
            if stopped:
                self.log("io-stopped", f"{replica}'s IO thread stopped (relay log kept)")
            self.nodes.failover(replica, self.steps)
        except Refused as exc:
            self.log("refused", str(exc))
            self._undo(primary, replica, stopped)
            return
        except DbError as exc:
            self.log("failed", f"{exc} (the journal {JOURNAL} stays: the next run resumes)")
            raise
        clear_journal()
        self.failovers += 1
        self.log("promoted", f"{replica} is the primary")

    def _undo(self, primary: str, replica: str, stopped: bool) -> None:
        """After a refusal: the replica resumes only if the primary answers again (restarting
        the IO thread purges the relay log: never while the primary is gone)."""
        clear_journal()
        if stopped and self.nodes.primary_answers(primary):
            self.nodes.start_io(replica)
            self.log("io-started", f"{primary} answers again: {replica} replicates again")


# --- the lock and the journal --------------------------------------------------------------

@contextmanager
def watch_lock(stop: threading.Event, say: Callable[[str], None],
               poll: float = 0.5) -> Iterator[bool]:
    """Hold the watcher's lock file; wait (saying so once) while another watcher holds it.
    Yields False when `stop` was set before the lock came."""
    path = state.STATE_DIR / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    say(f"another watcher holds {path}: waiting")
                    waited = True
                if stop.wait(poll):
                    yield False
                    return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)


def lock_holder() -> str | None:
    """The pid written by the watcher holding the lock, or None when no watcher runs."""
    path = state.STATE_DIR / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return path.read_text().strip() or "?"
    finally:
        os.close(fd)
    return None


def read_journal() -> dict[str, str] | None:
    try:
        return json.loads((state.STATE_DIR / JOURNAL).read_text())
    except FileNotFoundError:
        return None


def write_journal(dead: str, to: str) -> None:
    record = {"dead": dead, "to": to, "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (state.STATE_DIR / JOURNAL).write_text(json.dumps(record) + "\n")


def clear_journal() -> None:
    (state.STATE_DIR / JOURNAL).unlink(missing_ok=True)


# --- the real db tier ------------------------------------------------------------------------

class TierNodes:
    """``Nodes`` over the db tier: short-timed admin connections, kept between probes."""

    def __init__(self, tier: Tier, settings: WatchSettings) -> None:
        self.tier, self.settings = tier, settings
        self._conns: dict[str, Any] = {}
        self._recorder: threading.Thread | None = None

    def roles(self) -> tuple[str, str]:
        """The writable node (else the source of the only replica) and its replica."""
        nodes = self.tier.statuses()
        primary = next((n.name for n in nodes.values() if n.role == "primary"), None)
        replicas = [n for n in nodes.values() if n.reachable and n.replica is not None
                    and n.name != primary]
        if len(replicas) != 1:
            raise Refused(f"the watcher needs exactly one replica, found "
                          f"{[n.name for n in replicas]}: see runbooks/db_status.py")
        source = self.tier.by_address(replicas[0].replica.master_host)  # type: ignore[union-attr]
        if primary is None and source is None:
            raise Refused(f"no primary and {replicas[0].name} replicates from no node of the "
                          "inventory: see runbooks/db_status.py")
        if primary is not None and source != primary:
            raise Refused(f"{replicas[0].name} replicates from {source}, not from the primary "
                          f"{primary}: run runbooks/db_failover.py rejoin {replicas[0].name}")
        return primary or str(source), replicas[0].name

    def _query(self, name: str, sql: str) -> list[dict[str, Any]]:
        conn = self._conns.get(name)
        if conn is None:
            conn = self.tier.conn(name, read_timeout=self.settings.probe_timeout)
            self._conns[name] = conn
        try:
            return query(conn, sql)
        except Exception:
            self._drop(name)
            raise

    def _drop(self, name: str) -> None:
        conn = self._conns.pop(name, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass

    def primary_answers(self, name: str) -> bool:
        try:
            self._query(name, "SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure is a miss
            return False

    def replica_view(self, name: str) -> ReplicaView | None:
        try:
            rows = self._query(name, "SHOW ALL SLAVES STATUS")
        except Exception:  # noqa: BLE001 - the replica cannot be asked
            return None
        if not rows:
            return ReplicaView("No", ())
        row = rows[0]
        return ReplicaView(str(row.get("Slave_IO_Running") or "No"),
                           (row.get("Slave_received_heartbeats"), row.get("Master_Log_File"),
                            row.get("Read_Master_Log_Pos"), row.get("Gtid_IO_Pos")))

    def stop_io(self, name: str) -> bool:
        """STOP SLAVE IO_THREAD unless stopped. (Measured in the lab: about 2 s when the IO
        thread still waits on a dead primary's socket, about 50 ms once it is reconnecting;
        MariaDB re-signals a slave thread that does not stop every 2 s.)"""
        with self.tier.conn(name) as conn:
            rows = query(conn, "SHOW SLAVE STATUS")
            if not rows or rows[0].get("Slave_IO_Running") == "No":
                return False
            query(conn, "STOP SLAVE IO_THREAD")
            return True

    def start_io(self, name: str) -> None:
        with self.tier.conn(name) as conn:
            query(conn, "START SLAVE IO_THREAD")

    def failover(self, to: str, steps: Steps) -> None:
        for name in list(self._conns):
            self._drop(name)
        failover(self.tier, to, steps, degrade=self.settings.degrade)

    def seen_healthy(self) -> None:
        """Read the tier and record it in sync if it is healthy, in a thread (one at a time):
        a slow node must not hold the probes."""
        if self._recorder is not None and self._recorder.is_alive():
            return
        self._recorder = threading.Thread(target=self._record, daemon=True)
        self._recorder.start()

    def _record(self) -> None:
        try:
            record_in_sync(cluster_status(list(self.tier.statuses().values())))
        except Exception:  # noqa: BLE001 - not recorded this time; the probes go on
            pass

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.join(timeout=self.settings.probe_timeout + 5)
        for name in list(self._conns):
            self._drop(name)


def resume_failover(tier: Tier, steps: Steps, degrade: bool = True) -> str | None:
    """Finish (or refuse) a failover a dead watcher left in its journal; what was done."""
    record = read_journal()
    if record is None:
        return None
    dead, to = record["dead"], record["to"]
    steps.say(f"watch: a previous watcher died during the failover {dead} -> {to} "
              f"(since {record['since']}): resuming")
    nodes = tier.statuses()
    writable = [n.name for n in nodes.values() if n.role == "primary"]
    if writable:
        clear_journal()
        return f"nothing to do: {writable[0]} accepts writes"
    target = nodes[to]
    if target.replica is not None:
        failover(tier, to, steps, degrade=degrade)  # it checks everything again
    elif nodes[dead].reachable:
        raise Refused(f"{to} has its replication reset but is not open, and {dead} answers "
                      f"again: decide by hand (runbooks/db_status.py); the journal stays")
    elif not target.reachable:
        raise Refused(f"{to} does not answer: {target.error}; the journal stays")
    else:
        finish_promotion(tier, to, dead, target.gtid_current_pos, steps, degrade)
    clear_journal()
    return f"finished: {to} is the primary"


def watch(tier: Tier, settings: WatchSettings, steps: Steps, stop: threading.Event,
          duration: float, max_failovers: int = 1,
          on_start: Callable[[Watcher], None] = lambda _w: None) -> Watcher | None:
    """The whole watcher: take the lock (waiting for another watcher), finish what a dead
    one left, then watch; the Watcher (its events), or None when stopped while waiting.
    Refused / DbError go to the caller."""
    with watch_lock(stop, steps.say) as locked:
        if not locked:
            return None
        done = resume_failover(tier, steps, settings.degrade)
        if done:
            steps.say(f"watch: {done}")
        nodes = TierNodes(tier, settings)
        watcher = Watcher(nodes, settings, steps)
        on_start(watcher)
        try:
            watcher.run(stop, duration, max_failovers)
        finally:
            nodes.close()
        return watcher
