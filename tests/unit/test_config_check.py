"""config.yaml is checked when it is loaded, and a bad inventory or config stops every runbook
with exit 2 and a message naming the file and field, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core.settings import DEFAULT_CONFIG, REPO_ROOT, ProjectError, load_settings
from tp5lab.inventory_factory import write_inventory


def real_config() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def load_error(tmp_path: Path, text: str | bytes) -> ProjectError:
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ProjectError) as caught:
        load_settings(path)
    assert caught.value.exit_code == 2
    assert str(path) in str(caught.value)
    return caught.value


def with_change(path: tuple[str, ...], value: Any) -> str:
    config = real_config()
    target = config
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return yaml.safe_dump(config, sort_keys=False)


def test_the_repository_config_is_accepted() -> None:
    settings = load_settings()
    assert settings.is_lab and settings.lab_bridge_address == "10.5.1.1/24"
    assert settings.hosts_file == REPO_ROOT / "inventory" / "hosts.yaml"


@pytest.mark.parametrize(("path", "value"), [
    (("runner",), ["threaded"]), (("inventory",), "SimpleInventory"), (("user_defined",), 5),
    (("logging",), True), (("user_defined", "lab"), []), (("inventory", "options"), ["a"]),
    (("core",), None), (("runner", "options"), "num_workers: 64"),
])
def test_sections_of_the_wrong_type(tmp_path: Path, path: tuple[str, ...], value: Any) -> None:
    error = load_error(tmp_path, with_change(path, value))
    assert f"field {'.'.join(path)}: must be a mapping" in str(error)


@pytest.mark.parametrize(("path", "value"), [
    (("inventory", "plugin"), "YAMLInventory"), (("inventory", "plugin"), "simpleinventory"),
    (("inventory", "plugin"), "nornir.plugins.inventory.SimpleInventory"),
    (("runner", "plugin"), "serial"), (("runner", "plugin"), "RetryRunner"),
    (("runner", "plugin"), ["threaded"]),
])
def test_only_simple_inventory_and_the_threaded_runner(
    tmp_path: Path, path: tuple[str, ...], value: Any
) -> None:
    error = load_error(tmp_path, with_change(path, value))
    assert f"field {'.'.join(path)}: {value!r} is not supported" in str(error)


@pytest.mark.parametrize("path", [
    ("invetory",), ("runner", "options", "workers"), ("user_defined", "lab", "brigde"),
    ("inventory", "transform_function"), ("user_defined", "extra"), ("logging", "colour"),
    ("inventory", "options", "hosts_file"),
])
def test_unknown_keys_are_named(tmp_path: Path, path: tuple[str, ...]) -> None:
    error = load_error(tmp_path, with_change(path, "x"))
    assert f"field {'.'.join(path)}: unknown key" in str(error)


@pytest.mark.parametrize(("path", "value"), [
    (("user_defined", "lab", "bridge_address"), "10.5.1.0/24"),
    (("user_defined", "lab", "bridge_address"), "10.5.1.255/24"),
    (("user_defined", "lab", "bridge_address"), "10.5.1.1"),
    (("user_defined", "lab", "bridge_address"), "10.5.1.1/24\n"),
    (("user_defined", "lab", "bridge_address"), "10.5.1.1/31"),
    (("user_defined", "lab", "bridge_address"), 42),
    (("user_defined", "lab", "bridge"), "tp5br0\n"), (("user_defined", "lab", "bridge"), "br 0"),
    (("user_defined", "target"), "Lab"), (("user_defined", "target"), True),
    (("runner", "options", "num_workers"), "64"), (("runner", "options", "num_workers"), True),
    (("runner", "options", "num_workers"), 0), (("logging", "enabled"), "no"),
    (("inventory", "options", "host_file"), "hosts\x00.yaml"),
    (("inventory", "options", "host_file"), ["hosts.yaml"]),
])
def test_values_of_the_wrong_type_or_form(tmp_path: Path, path: tuple[str, ...],
                                          value: Any) -> None:
    error = load_error(tmp_path, with_change(path, value))
    assert f"field {'.'.join(path)}: " in str(error)


@pytest.mark.parametrize(("text", "wanted"), [
    ("a: &a [1, 2]\nb: [*a, *a, *a]\n", "refused"),
    ("runner: &r {plugin: threaded}\n", "refused"),
    ("runner: {plugin: threaded}\nrunner: {plugin: threaded}\n", "line 2 repeats line 1"),
    ("- inventory\n", "must be a mapping"),
    ("runner: [unclosed\n", "not valid YAML"),
    ("logging: " + "[" * 3000 + "]" * 3000 + "\n", "refused"),
    (b"user_defined: {target: \xfflab}\n", "not UTF-8"),
])
def test_unsafe_or_malformed_config_files(tmp_path: Path, text: str | bytes, wanted: str) -> None:
    assert wanted in str(load_error(tmp_path, text))


def test_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="config file not found") as caught:
        load_settings(tmp_path / "nope.yaml")
    assert caught.value.exit_code == 2


# --- runbooks, end to end (no lab needed: they stop before any connection) ----------------

def _groups_edit(config: Path, change: Any) -> None:
    path = config.parent / "inventory" / "groups.yaml"
    groups = yaml.safe_load(path.read_text())
    change(groups)
    path.write_text(yaml.safe_dump(groups, sort_keys=False))


def _inventory(tmp_path: Path, case: str) -> Path:
    config = write_inventory(tmp_path, 3, host_changes={"web2": {"hostname": "10.5.1.1"}}
                             if case == "bridge address" else None)
    inventory = config.parent / "inventory"
    if case == "profile key":
        _groups_edit(config, lambda g: g["rp"]["data"]["vrrp_profiles"].update(
            {"fast\nvrrp_script evil {": {"version": 3, "advert_int": 0.1}}))
    elif case == "self member":
        _groups_edit(config, lambda g: g["web"].update(groups=["web"]))
    elif case == "db name":
        text = (inventory / "defaults.yaml").read_text()
        (inventory / "defaults.yaml").write_text(text.replace("app_nulle", "mysql"))
    elif case == "alias bomb":
        text = (inventory / "hosts.yaml").read_text()
        (inventory / "hosts.yaml").write_text(
            text + "x: &a [1, 1, 1, 1, 1, 1, 1, 1]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n")
    elif case == "runner plugin":
        raw = yaml.safe_load(config.read_text())
        raw["runner"]["plugin"] = "serial"
        config.write_text(yaml.safe_dump(raw))
    return config


RUNBOOK_CASES = [
    ("lab.py", ["status"], "profile key", ["groups.yaml", "group rp", "field vrrp_profiles"]),
    ("deploy.py", ["--dry-run"], "bridge address",
     ["hosts.yaml", "host web2", "field hostname", "bridge address"]),
    ("deploy.py", ["--dry-run"], "db name", ["defaults.yaml", "field app_name", "schema"]),
    ("lab.py", ["status"], "alias bomb", ["hosts.yaml", "field (file)", "aliases"]),
    ("deploy.py", ["--dry-run"], "self member", ["groups.yaml", "group web", "own member"]),
    ("lab.py", ["status"], "runner plugin", ["config.yaml", "field runner.plugin"]),
    ("failover_drill.py", [], "profile key", ["groups.yaml", "field vrrp_profiles"]),
]


@pytest.mark.parametrize(("runbook", "args", "case", "wanted"), RUNBOOK_CASES,
                         ids=[f"{r}-{c}" for r, _, c, _ in RUNBOOK_CASES])
def test_runbooks_stop_on_bad_input_with_exit_2_and_no_traceback(
    tmp_path: Path, runbook: str, args: list[str], case: str, wanted: list[str]
) -> None:
    config = _inventory(tmp_path, case)
    proc = subprocess.run([sys.executable, f"runbooks/{runbook}", "--config", str(config), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    for text in wanted:
        assert text in proc.stderr, proc.stderr
