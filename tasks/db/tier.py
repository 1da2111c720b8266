"""The db tier as the failover operations handle it: SQL and SSH to named nodes, timed steps.

``Tier`` holds the Nornir of the db hosts (SSH: the statements run as a node's root), the
``DbTarget`` (SQL: admin connections, lab route checked first) and the whole inventory.
``Steps`` prints each step with the time it started and how long it took, and keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pymysql
from nornir.core import Nornir
from nornir.core.inventory import Host

from tasks.core.inventory import tier_hosts
from tasks.db.sql import CONNECT_TIMEOUT, DbError, DbTarget, connect_admin
from tasks.db.status import NodeStatus, read_node_status
from tasks.deploy.errors import describe_error


class Refused(DbError):
    """A precondition does not hold: nothing (more) was changed. The message says why and
    what to run next."""


@dataclass
class Steps:
    """Each step printed as it starts and ends, with wall-clock time and duration (ms)."""

    out: Callable[[str], None] = print
    done: list[tuple[str, float]] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.out(f"{datetime.now().strftime('%H:%M:%S.%f')[:-3]} {text}")

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.say(f"{what} ...")
        started = time.monotonic()
        try:
            yield
        except Exception:
            self.say(f"  failed after {(time.monotonic() - started) * 1000:.1f} ms")
            raise
        ms = (time.monotonic() - started) * 1000
        self.done.append((what, ms))
        self.say(f"  done in {ms:.1f} ms")

    def ms(self, prefix: str) -> float:
        """Total ms of the steps whose description starts with `prefix`."""
        return sum(ms for what, ms in self.done if what.startswith(prefix))


@dataclass
class Tier:
    """The db nodes: SQL (admin) and SSH (root) access by name."""

    nr: Nornir
    target: DbTarget
    connect_timeout: float = CONNECT_TIMEOUT  # shorter for the watcher (a dead node)
    status_timeout: float = 10.0  # reading a node's status (shorter for the watcher: a hang)

    @property
    def names(self) -> list[str]:
        return [h.name for h in tier_hosts(self.nr.inventory, "db")]

    def host(self, name: str) -> Host:
        return self.nr.inventory.hosts[name]

    def by_address(self, address: str) -> str | None:
        return next((n for n in self.names if self.host(n).hostname == address), None)

    def conn(self, name: str, read_timeout: float = 10) -> pymysql.connections.Connection:
        return connect_admin(self.target, self.host(name), read_timeout=read_timeout,
                             connect_timeout=self.connect_timeout)

    def status(self, name: str) -> NodeStatus:
        """The node's NodeStatus (unreachable, with the error, when it cannot be asked)."""
        host = self.host(name)
        try:
            conn = self.conn(name, read_timeout=self.status_timeout)
        except DbError as exc:
            return NodeStatus(name, host.hostname, str(host["db_role"]), reachable=False,
                              error=str(exc))
        try:
            return read_node_status(conn, host)
        finally:
            conn.close()

    def statuses(self) -> dict[str, NodeStatus]:
        return {name: self.status(name) for name in self.names}

    def on(self, name: str, task: Callable[..., Any], **kwargs: Any) -> Any:
        """Run a Nornir task on one node (SSH); its result, or DbError with the cause."""
        result = self.nr.filter(name=name).run(task=task, **kwargs)[name]
        if result.failed:
            exc = result[0].exception or next((r.exception for r in result if r.exception),
                                              None)
            raise DbError(f"{name}: {describe_error(exc) if exc else result[0].result}")
        return result[0].result
