"""The deploy's command line refuses bad values with exit 2 and one message, never a
traceback, before any work or connection: these runs use an inventory whose lab bridge does
not exist, so a check made after the lab's (exit 3) would show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.core.settings import REPO_ROOT
from tp5lab.inventory_factory import write_inventory


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "runbooks/deploy.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The error message of a run that must have exited 2 cleanly, naming `words`."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error) == 1, proc.stderr
    for word in words:
        assert word in error[0], (word, error[0])
    assert "deploy:" not in proc.stdout  # no host was started
    return error[0]


@pytest.fixture()
def no_lab(tmp_path: Path) -> Path:
    """An inventory whose lab bridge does not exist: any lab check would exit 3."""
    config = write_inventory(tmp_path / "inv", 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["lab"]["bridge"] = "tp5nobridge"
    config.write_text(yaml.safe_dump(raw))
    return config


def test_valid_arguments_reach_the_lab_check(no_lab: Path, tmp_path: Path) -> None:
    """The control: every value below is accepted, and the run stops at the missing lab."""
    out = tmp_path / "deploy.json"
    proc = run("--config", str(no_lab), "--group", "web", "--host", "web1", "--requests", "0",
               "--vip-wait", "0", "--json", str(out))
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "tp5nobridge" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    for args in (("--requests", "10000"), ("--vip-wait", "600"), ("--vip-wait", "2.5")):
        assert run("--config", str(no_lab), *args).returncode == 3, args


@pytest.mark.parametrize(("selection", "why"), [
    (("--host", "web1", "--group", "rp"), "web1 is in group web"),
    (("--group", "web", "--host", "db1"), "db1 is in group db"),
    (("--group", "db", "--host", "rp1", "--host", "rp2"),
     "rp1 is in group rp; rp2 is in group rp"),
    (("--group", "rp", "--group", "db", "--host", "web3"), "web3 is in group web"),
])
def test_a_selection_of_no_host_is_refused_naming_it(
    no_lab: Path, selection: tuple[str, ...], why: str
) -> None:
    message = refused(run("--config", str(no_lab), *selection), "selects no host", why,
                      "nothing done")
    for option, value in zip(selection[::2], selection[1::2], strict=True):
        assert f"{option} {value}" in message


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1", "-0.5", "601", "1e9",
                                   "soon", ""])
def test_vip_wait_must_be_finite_and_in_range(no_lab: Path, value: str) -> None:
    message = refused(run("--config", str(no_lab), f"--vip-wait={value}"), "--vip-wait",
                      repr(value))
    assert "from 0 to 600" in message


@pytest.mark.parametrize("value", ["-1", "10001", "1000000", "2.5", "nan", "inf", "many", "1e3",
                                   ""])
def test_requests_must_be_a_whole_number_in_range(no_lab: Path, value: str) -> None:
    message = refused(run("--config", str(no_lab), f"--requests={value}"), "--requests",
                      repr(value))
    assert "from 0 (0: 3 per web server) to 10000" in message


def test_json_in_a_missing_folder_is_refused_before_any_work(no_lab: Path,
                                                             tmp_path: Path) -> None:
    for missing in (tmp_path / "no", tmp_path / "no" / "such"):
        refused(run("--config", str(no_lab), "--json", str(missing / "deploy.json")),
                "--json", f"folder {missing} ", "does not exist")


def test_json_that_is_a_folder_or_under_a_file_is_refused(no_lab: Path,
                                                          tmp_path: Path) -> None:
    refused(run("--config", str(no_lab), "--json", str(tmp_path)), "--json", "is a folder")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused(run("--config", str(no_lab), "--json", str(a_file / "deploy.json")),
            "--json", f"{a_file} ", "is not a folder")
    refused(run("--config", str(no_lab), "--json="), "--json", "file path")


@pytest.mark.parametrize("hosts", [("web9",), ("RP1",), ("web1", "db7"), ("",)])
def test_unknown_host_names_are_refused(no_lab: Path, hosts: tuple[str, ...]) -> None:
    args = [arg for h in hosts for arg in ("--host", h)]
    unknown = [h for h in hosts if h not in ("web1",)]
    message = refused(run("--config", str(no_lab), *args), "no such", "in the inventory")
    for name in unknown:
        assert f"host {name}" in message


@pytest.mark.parametrize("group", ["lb", "RP", "all", ""])
def test_unknown_groups_are_refused(no_lab: Path, group: str) -> None:
    refused(run("--config", str(no_lab), "--group", group), "--group", "invalid choice")


def test_a_missing_config_is_refused(tmp_path: Path) -> None:
    refused(run("--config", str(tmp_path / "nope.yaml")), "nope.yaml", "config file not found")
