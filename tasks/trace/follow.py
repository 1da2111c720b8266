"""`trace.py --follow`: the access logs of the selected nodes, live, in time order.

One remote `tail` per log on its own SSH exec channel (tasks.trace.logs); this process reads
every channel with select(), stamps each line with the time at its start (nginx: when the
request ended; Apache: when it arrived) and holds it `HOLD` seconds so that lines from
different nodes come out in time order. Ends at `duration` or Ctrl-C, then stops the remote
tails by their PIDs (each also has a remote `timeout`, should this process be killed).
"""

from __future__ import annotations

import heapq
import itertools
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from nornir.core import Nornir

from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import EXIT_BAD_INVENTORY, ProjectError, load_settings
from tasks.trace.logs import MARK, Tail, open_tail, stop_tail
from tasks.trace.parse import line_time

HOLD = 1.0  # seconds a line waits for earlier lines from slower nodes
GRACE = 30  # the remote tails end by themselves this long after --duration


@dataclass(order=True)
class Entry:
    """A line waiting to be printed, ordered by its log time (then arrival)."""

    time: float
    seq: int
    node: str = field(compare=False)
    text: str = field(compare=False)


def format_entry(entry: Entry, width: int) -> str:
    """`12:34:56.789  rp1    <the log line as written>`."""
    stamp = datetime.fromtimestamp(entry.time).strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp}  {entry.node:<{width}}  {entry.text}"


class Merger:
    """Lines from every node in, lines in time order out (pure: the clock is passed in)."""

    def __init__(self, hold: float = HOLD) -> None:
        self.hold = hold
        self._heap: list[Entry] = []
        self._seq = itertools.count()

    def push(self, node: str, text: str, arrived: float) -> None:
        stamp = line_time(text)
        heapq.heappush(self._heap, Entry(arrived if stamp is None else stamp, next(self._seq),
                                         node, text))

    def ready(self, now: float) -> list[Entry]:
        """Lines older than `now - hold`, oldest first."""
        out = []
        while self._heap and self._heap[0].time <= now - self.hold:
            out.append(heapq.heappop(self._heap))
        return out

    def rest(self) -> list[Entry]:
        out = sorted(self._heap)
        self._heap.clear()
        return out


@dataclass
class Stream:
    """One remote tail being read: partial line buffer, and its PID once printed."""

    tail: Tail
    buffer: bytes = b""
    ended: bool = False

    def read(self) -> list[str]:
        """Complete lines available now (the PID line is consumed here)."""
        channel = self.tail.channel
        while channel.recv_ready():  # type: ignore[attr-defined]
            self.buffer += channel.recv(65536)  # type: ignore[attr-defined]
        if channel.eof_received and not channel.recv_ready():  # type: ignore[attr-defined]
            self.ended = True
        *lines, self.buffer = self.buffer.split(b"\n")
        texts = [raw.decode(errors="replace").rstrip("\r") for raw in lines]
        if self.tail.pid is None and texts and texts[0].startswith(MARK + "pid "):
            self.tail.pid = int(texts.pop(0).split()[-1])
        return texts


@dataclass
class FollowSummary:
    nodes: list[str]
    lines: dict[str, int]
    problems: dict[str, str]
    seconds: float
    interrupted: bool

    def describe(self) -> str:
        counts = ", ".join(f"{n}: {self.lines.get(n, 0)}" for n in self.nodes)
        how = "Ctrl-C" if self.interrupted else "end of --duration"
        return f"followed {len(self.nodes)} node(s) for {self.seconds:.1f} s ({how}): " \
               f"lines {counts}"


def start_tails(nodes: Nornir, app_name: str, max_seconds: int) -> tuple[list[Stream],
                                                                        dict[str, str]]:
    results = nodes.run(task=open_tail, app_name=app_name, max_seconds=max_seconds)
    streams, problems = [], {}
    for host, multi in sorted(results.items()):
        if multi.failed:
            problems[host] = str(multi[0].exception).splitlines()[0]
        else:
            streams.extend(Stream(t) for t in multi[0].result)
    return streams, problems


def wait_started(streams: list[Stream], merger: Merger, timeout: float = 10.0) -> None:
    """Wait until every tail printed its PID: the size of its log is taken then, so every
    line written from now on will be shown (bounded; a silent one is reported later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [s for s in streams if s.tail.pid is None and not s.ended]
        if not waiting:
            return
        select.select([s.tail.channel for s in waiting], [], [], 0.2)
        for stream in waiting:
            for text in stream.read():
                merger.push(stream.tail.node, text, time.time())


def stop_tails(nodes: Nornir, streams: list[Stream]) -> None:
    """Stop every remote tail whose PID is known, close the channels."""
    for stream in streams:
        if stream.tail.pid is None:
            stream.read()
    pids: dict[str, list[int]] = {}
    for stream in streams:
        if stream.tail.pid is not None and not stream.ended:
            pids.setdefault(stream.tail.node, []).append(stream.tail.pid)
    if pids:
        nodes.run(task=stop_tail, pids=pids)
    for stream in streams:
        stream.tail.channel.close()  # type: ignore[attr-defined]


def pump(streams: list[Stream], merger: Merger, deadline: float,
         emit: Callable[[Entry], None], problems: dict[str, str],
         stop: threading.Event | None = None) -> None:
    """Read every stream until `deadline` (monotonic) or `stop`, emitting lines in time
    order."""
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        live = [s for s in streams if not s.ended]
        if live:
            select.select([s.tail.channel for s in live], [], [], 0.2)
        else:
            time.sleep(0.2)
        for stream in live:
            for text in stream.read():
                merger.push(stream.tail.node, text, time.time())
            if stream.ended:
                problems[stream.tail.node] = f"the tail of {stream.tail.path} ended"
        for entry in merger.ready(time.time()):
            emit(entry)


def follow_logs(config: str | None, groups: list[str], duration: float,
                out: Callable[[str], None] = print) -> FollowSummary:
    """Tail the access logs of the nodes of `groups`, print them interleaved, stop cleanly."""
    settings = load_settings(config)
    nr = build_nornir(settings, check_lab=False)
    nodes = select_hosts(nr, groups)
    if not nodes.inventory.hosts:
        raise ProjectError(f"{settings.hosts_file}: no host in group(s) {', '.join(groups)}",
                           EXIT_BAD_INVENTORY)
    ensure_reachable(nodes, settings)
    names = sorted(nodes.inventory.hosts)
    width = max(len(n) for n in names)
    app_name = str(nodes.inventory.hosts[names[0]]["app_name"])
    counts: dict[str, int] = {}

    def emit(entry: Entry) -> None:
        counts[entry.node] = counts.get(entry.node, 0) + 1
        out(format_entry(entry, width))

    started = time.monotonic()
    streams, problems = start_tails(nodes, app_name, int(duration) + GRACE)
    merger = Merger()
    # Ctrl-C sets an event the loop checks every 0.2 s, rather than an exception raised
    # wherever the main thread happens to be (inside paramiko's reads, say).
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
    try:
        wait_started(streams, merger)
        for s in streams:
            out(f"following {s.tail.node}:{s.tail.path}")
        out(f"following {len(streams)} log(s) for {duration:g} s (Ctrl-C to stop)")
        pump(streams, merger, started + duration, emit, problems, stop)
    finally:
        signal.signal(signal.SIGINT, previous)
        for entry in merger.rest():
            emit(entry)
        stop_tails(nodes, streams)
        nr.close_connections()
    return FollowSummary(names, counts, problems, time.monotonic() - started, stop.is_set())
