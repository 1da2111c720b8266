"""The watcher during a db experiment: started in a thread (tasks.db.watch.watch, the same
code as ``runbooks/db_failover.py watch``), or an outside watcher already running is used.
Its events give the drill's marks (suspected, confirmed, promoting, promoted)."""

from __future__ import annotations

import threading
import time

from tasks.db.sql import DbError
from tasks.db.tier import Steps
from tasks.db.watch import Watcher, lock_holder, watch
from tasks.drill.db_context import DbDrillContext

WATCH_DURATION = 600.0


class Observed:
    """The watcher running in a thread during one experiment (or an outside one)."""

    def __init__(self, ctx: DbDrillContext) -> None:
        self.ctx, self.stop = ctx, threading.Event()
        self.watcher: Watcher | None = None
        self.error: str | None = None
        self.outside = lock_holder()
        self.thread = threading.Thread(target=self._run, daemon=True)
        if self.outside is None:
            self.thread.start()
            self._wait_started()
        else:
            ctx.progress(f"a watcher already runs (pid {self.outside}): the drill uses it")

    def _run(self) -> None:
        steps = Steps(out=lambda line: self.ctx.progress(line))
        try:
            watch(self.ctx.watch_tier, self.ctx.watch, steps, self.stop, WATCH_DURATION, 1,
                  on_start=self._started)
        except DbError as exc:
            self.error = str(exc)

    def _started(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def _wait_started(self) -> None:
        deadline = time.monotonic() + 30
        while (self.error is None and time.monotonic() < deadline
               and not (self.watcher and self.watcher.first("watching"))):
            time.sleep(0.05)

    def mark(self, kind: str) -> float | None:
        return self.watcher.first(kind) if self.watcher else None

    def finished(self) -> bool:
        return self.error is not None or any(
            self.mark(k) is not None for k in ("promoted", "refused", "failed"))

    def close(self) -> list[dict]:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=60)
        if self.watcher is None:
            return []
        return [{"at": e.at, "kind": e.kind, "text": e.text} for e in self.watcher.events]
