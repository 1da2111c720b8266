"""Safety of the network: nothing is sent unless the lab bridge carries it; pinned host keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import paths
from lab.control import Lab
from lab.inventory_factory import write_inventory
from tasks.project import REPO_ROOT


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


@pytest.mark.lab
def test_a_host_whose_key_does_not_match_the_pinned_one_is_refused_alone(
    deployed: object, lab: Lab, deploy: Any
) -> None:
    pinned = paths.KNOWN_HOSTS.read_text()
    impostor = (paths.node_dir("web1") / "ssh_host_ed25519_key.pub").read_text().split()
    lines = [f"10.5.1.12 {impostor[0]} {impostor[1]}" if line.startswith("10.5.1.12 ")
             else line for line in pinned.splitlines()]
    try:
        paths.KNOWN_HOSTS.write_text("\n".join(lines) + "\n")
        run = deploy("--host", "web2", "--host", "web3")
        assert run.returncode != 0
        assert run.status("web2") == "failed" and run.status("web3") == "unchanged"
        error = run.summary["hosts"]["web2"]["error"]
        assert "does not match the one pinned" in error, error
    finally:
        paths.KNOWN_HOSTS.write_text(pinned)
    again = deploy("--host", "web2")
    assert again.returncode == 0 and again.status("web2") == "unchanged"
