"""The lab guard: nothing is sent unless the lab bridge carries it (no root needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tasks.core.settings import REPO_ROOT
from tp5lab.inventory_factory import write_inventory


def test_runbooks_refuse_when_the_lab_bridge_is_missing(tmp_path: Path) -> None:
    config = write_inventory(tmp_path, 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["lab"]["bridge"] = "tp5nobridge"
    config.write_text(yaml.safe_dump(raw))
    for runbook in ("deploy.py", "failover_drill.py", "db_status.py"):
        proc = subprocess.run([sys.executable, f"runbooks/{runbook}", "--config", str(config)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 3, (runbook, proc.stdout, proc.stderr)
        assert "refusing to connect" in proc.stderr
        assert "the lab bridge tp5nobridge is not up" in proc.stderr
