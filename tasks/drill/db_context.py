"""What a db drill works with, read once from the settings and the inventory.

The writers run where the app runs: in the network namespace of the first web server (the
app account is granted to the web servers' addresses only), with the app's account and the
db nodes in the order of the page's db.php (templates/php/db.php.j2: sorted by role, so the
inventory's primary is asked first). The db drill needs the local lab (the writers enter a
lab node; crash and link act on the lab's cables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tasks.core.guard import ensure_lab_targets
from tasks.core.inventory import tier_hosts, vip
from tasks.core.nornir_build import build_nornir, ensure_reachable, select_hosts
from tasks.core.settings import ProjectError, Settings
from tasks.db.deploy import database_name
from tasks.db.sql import DbTarget
from tasks.db.tier import Tier
from tasks.db.watch import STATUS_TIMEOUT, WatchSettings, watcher_tier


class DbLabControl(Protocol):
    """What the db drill needs of the local lab (tp5lab.control.Lab, given by the runbook)."""

    def crash(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def cut_link(self, name: str) -> None: ...
    def restore_link(self, name: str) -> None: ...
    def netns_argv(self, name: str, argv: list[str]) -> list[str]: ...


@dataclass(frozen=True)
class DbDrillContext:
    """Everything a db experiment needs; nothing in it changes during a drill."""

    tier: Tier  # the db nodes (SQL as admin, SSH as root) for the drill's own steps
    watch_tier: Tier  # the same nodes for the watcher: short connect timeout (a dead node)
    lab: DbLabControl
    web: str  # the web node whose network namespace the writers run in
    web_address: str
    nodes: tuple[tuple[str, int], ...]  # the page's db.php order (address, port)
    names: dict[str, str]  # db address -> name
    database: str
    vip: str | None
    writers: int
    watch: WatchSettings
    settle_timeout: float
    progress: Callable[[str], None]


def build_db_context(settings: Settings, lab: DbLabControl | None, *, writers: int = 4,
                     settle_timeout: float = 30.0,
                     progress: Callable[[str], None] = lambda _m: None) -> DbDrillContext:
    """Check the request and build Nornir once; refusals (exit 2 / 3) before connecting."""
    if lab is None or not settings.is_lab:
        raise ProjectError("--group db needs the local lab (config.yaml target: lab): its "
                           "writers run in a web node's namespace", 2)
    nr = build_nornir(settings, check_lab=False)
    dbs, webs = tier_hosts(nr.inventory, "db"), tier_hosts(nr.inventory, "web")
    if len(dbs) != 2 or not webs:
        raise ProjectError(f"{settings.hosts_file}: the db drill needs two db nodes and a web "
                           f"server (found {len(dbs)} db, {len(webs)} web)", 2)
    ensure_reachable(nr, settings)
    address = vip(nr.inventory)
    ensure_lab_targets(settings, [h.hostname for h in dbs] + ([address] if address else []))
    ordered = sorted(dbs, key=lambda h: str(h["db_role"]))  # db.php.j2: sort(attribute="role")
    watch = WatchSettings()
    db_nr, target = select_hosts(nr, ["db"]), DbTarget.from_settings(settings)
    return DbDrillContext(
        tier=Tier(db_nr, target, status_timeout=STATUS_TIMEOUT),
        watch_tier=watcher_tier(db_nr, target, watch),
        lab=lab, web=webs[0].name, web_address=webs[0].hostname,
        nodes=tuple((h.hostname, int(h["db_port"])) for h in ordered),
        names={h.hostname: h.name for h in dbs}, database=database_name(dbs[0]),
        vip=address, writers=writers, watch=watch, settle_timeout=settle_timeout,
        progress=progress)
