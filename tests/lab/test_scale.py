"""Scaling the web tier: up to four web servers, then back to three; every deploy passes and
the round-robin through the VIP follows the inventory, never a removed server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DeployRun, run_lab

from tp5lab.control import Lab
from tp5lab.inventory_factory import write_inventory

pytestmark = pytest.mark.lab


def served(run: DeployRun) -> set[str]:
    """The web servers the deploy's round-robin through the VIP reached (short names)."""
    return {name.split(".")[0] for name in run.summary["round_robin"]["counts"]}


def test_scale_up_then_down_each_deploy_passes_and_follows_the_inventory(
        lab: Lab, tmp_path: Path, deploy: Callable[..., DeployRun]) -> None:
    try:
        four = write_inventory(tmp_path / "four", 4)
        assert run_lab("up", config=four).returncode == 0
        grown = deploy("--config", str(four))
        assert grown.returncode == 0, grown.stdout + grown.stderr
        assert served(grown) == {"web1", "web2", "web3", "web4"}

        three = write_inventory(tmp_path / "three", 3)
        shrunk_lab = run_lab("up", config=three)
        assert shrunk_lab.returncode == 0 and "removed web4" in shrunk_lab.stdout
        shrunk = deploy("--config", str(three))
        assert shrunk.returncode == 0, shrunk.stdout + shrunk.stderr
        assert shrunk.summary["round_robin"]["errors"] == []
        assert served(shrunk) == {"web1", "web2", "web3"}  # web4 left every proxy's pool
        assert {shrunk.status("rp1"), shrunk.status("rp2")} == {"changed"}
        assert "FAILED" not in shrunk.stdout
    finally:
        assert run_lab("up").returncode == 0  # the repository's inventory again
        again = deploy()
        assert again.returncode == 0, again.stdout + again.stderr
