"""Safety of the network: nothing is sent unless the lab bridge carries it; pinned host keys."""

from __future__ import annotations

from typing import Any

import pytest

from tp5lab import paths
from tp5lab.control import Lab


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
