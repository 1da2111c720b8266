"""Where the framework keeps its local state: a 0700 directory outside /etc and /var.

It holds the database passwords it generates (``secrets/``), the database TLS CA and
certificates of real machines (``tls/``) and, in lab mode, the controller's
SSH key and the lab nodes' pinned host keys. It cannot live under /etc or /var: in the local
lab those are the lower layers of every node's overlay. Override with TP5_LAB_STATE.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = Path(os.environ.get("TP5_LAB_STATE", "/srv/tp5lab"))
KEY_FILE = STATE_DIR / "id_ed25519"
KNOWN_HOSTS = STATE_DIR / "known_hosts"
SECRETS_DIR = STATE_DIR / "secrets"
# Real machines: the database CA and the db nodes' certificates (tasks.core.tls).
TLS_DIR = STATE_DIR / "tls"
