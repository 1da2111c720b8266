"""Write a copy of the repository's inventory with the web tier grown to N nodes.

Used by the scale tests and the benchmarks: `write_inventory(folder, web_count=50)` returns
the path of a config.yaml whose inventory has web1..webN (10.5.1.11 upwards) and the same
proxies and databases as the repository's.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

from tasks.core.settings import REPO_ROOT, load_settings

FIRST_WEB = ipaddress.ip_address("10.5.1.11")
MAX_WEB = 99  # web addresses stay below the VIP (10.5.1.110)


def write_inventory(folder: Path, web_count: int, changes: dict | None = None,
                    host_changes: dict | None = None) -> Path:
    """Write config.yaml and inventory/ under folder; `changes` updates groups' data,
    `host_changes` hosts' fields (e.g. {"web2": {"hostname": ...}, "db2": {"data": {...}}})."""
    if not 1 <= web_count <= MAX_WEB:
        raise ValueError(f"web_count must be 1..{MAX_WEB}, not {web_count}")
    settings = load_settings(REPO_ROOT / "config.yaml")
    hosts = yaml.safe_load(settings.hosts_file.read_text())
    groups = yaml.safe_load(settings.groups_file.read_text())
    others = {name: h for name, h in hosts.items() if "web" not in h.get("groups", [])}
    webs = {f"web{i + 1}": {"hostname": str(FIRST_WEB + i), "groups": ["web"]}
            for i in range(web_count)}
    for group, data in (changes or {}).items():
        groups[group].setdefault("data", {}).update(data)
    all_hosts = {**webs, **others}
    for name, fields in (host_changes or {}).items():
        for key, value in fields.items():
            if isinstance(value, dict):
                all_hosts[name].setdefault(key, {}).update(value)
            else:
                all_hosts[name][key] = value
    inventory = folder / "inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(all_hosts, sort_keys=False))
    (inventory / "groups.yaml").write_text(yaml.safe_dump(groups, sort_keys=False))
    (inventory / "defaults.yaml").write_text(settings.defaults_file.read_text())
    config = dict(settings.raw)
    config["inventory"] = {**config["inventory"], "options": {
        "host_file": "inventory/hosts.yaml", "group_file": "inventory/groups.yaml",
        "defaults_file": "inventory/defaults.yaml"}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
