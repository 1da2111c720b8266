"""Where the local lab keeps its state: a 0700 directory outside /etc and /var.

It cannot live under /etc or /var: those are the lower layers of every node's overlay.
Override with TP5_LAB_STATE.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = Path(os.environ.get("TP5_LAB_STATE", "/srv/tp5lab"))
KEY_FILE = STATE_DIR / "id_ed25519"
AUTHORIZED_KEYS = STATE_DIR / "authorized_keys"
KNOWN_HOSTS = STATE_DIR / "known_hosts"
SSHD_CONFIG = STATE_DIR / "sshd_config"
NODES_DIR = STATE_DIR / "nodes"
SECRETS_DIR = STATE_DIR / "secrets"
# One lab per machine: `lab.py up/down/crash...`, a test session and the benchmarks queue here.
LOCK_FILE = Path("/run/tp5lab.lock")


def node_dir(name: str) -> Path:
    return NODES_DIR / name
