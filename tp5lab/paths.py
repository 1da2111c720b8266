"""Where the local lab keeps its state: the framework's state directory (tasks.core.state),
plus the lab's own files in it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.core.state import KEY_FILE, KNOWN_HOSTS, SECRETS_DIR, STATE_DIR

__all__ = ["STATE_DIR", "KEY_FILE", "KNOWN_HOSTS", "SECRETS_DIR", "AUTHORIZED_KEYS",
           "SSHD_CONFIG", "NODES_DIR", "LOCK_FILE", "node_dir", "lab_lock"]

AUTHORIZED_KEYS = STATE_DIR / "authorized_keys"
SSHD_CONFIG = STATE_DIR / "sshd_config"
NODES_DIR = STATE_DIR / "nodes"
# One lab per machine: `lab.py up/down/crash...`, a test session and the benchmarks queue here.
LOCK_FILE = Path("/run/tp5lab.lock")


def node_dir(name: str) -> Path:
    return NODES_DIR / name


@contextmanager
def lab_lock() -> Iterator[None]:
    """Hold the machine's lab lock (queue behind any other user of the lab).

    A caller that already holds it for a whole sequence of commands (``flock
    /run/tp5lab.lock env TP5_LAB_LOCK_HELD=1 ...``) sets TP5_LAB_LOCK_HELD=1 so that the
    commands inside do not wait for themselves.
    """
    if os.environ.get("TP5_LAB_LOCK_HELD") == "1":
        yield
        return
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
