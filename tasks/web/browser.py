"""The app in a real browser: headless Chromium (Debian's `chromium`) opening it by its name.

Network safety: Chromium's own host resolver rules map the app's name to the given address
and make every other name fail (so nothing depends on DNS or /etc/hosts, and a page cannot
pull anything from elsewhere); no proxy; background networking, component updates, sync and
QUIC off. Each start is bounded by a timeout (its whole process group is killed after it) and
uses a new empty profile: no cookie, so each load is a new session on a new connection.
The caller checks the route to the address first (lab: `tasks.core.guard.ensure_lab_targets`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nornir.core.inventory import Inventory

from tasks.core.guard import ensure_lab_targets
from tasks.core.inventory import app_at_vip
from tasks.core.nornir_build import build_nornir
from tasks.core.settings import EXIT_BAD_INVENTORY, ProjectError, Settings
from tasks.web.page import parse_html

CHROMIUM_NAMES = ("chromium", "chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-proxy-server",
         "--hide-scrollbars")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BrowserError(ProjectError):
    """Chromium is missing, timed out or failed (exit code 1)."""


@dataclass(frozen=True)
class AppSite:
    """The app's name and the one address Chromium may reach for it (the proxies' VIP)."""

    name: str
    address: str

    @property
    def url(self) -> str:
        return f"http://{self.name}/"

    @property
    def resolver_rules(self) -> str:
        return f"MAP {self.name} {self.address}, MAP * ~NOTFOUND"


@dataclass(frozen=True)
class Load:
    """One page load: the facts shown (see tasks.web.page) and Chromium's wall time."""

    facts: dict[str, str]
    seconds: float


def app_site(inventory: Inventory) -> AppSite | None:
    """`<app_name>.<domain>` at the VIP, from the proxies' data (None without a proxy tier)."""
    app = app_at_vip(inventory)
    return AppSite(app[0], app[1]) if app else None


def checked_site(settings: Settings) -> AppSite:
    """The app's site from the inventory; in lab mode only once the VIP is behind the bridge."""
    site = app_site(build_nornir(settings, check_lab=False).inventory)
    if site is None:
        raise ProjectError(f"{settings.groups_file}: no proxy tier (rp), so no VIP to open "
                           "the app at", EXIT_BAD_INVENTORY)
    if settings.is_lab:
        ensure_lab_targets(settings, [site.address])
    return site


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("chromium is not installed: run `make setup` as root "
                       "(or apt-get install chromium)")


def chromium_argv(binary: str, site: AppSite, profile: Path, action: list[str]) -> list[str]:
    """The whole command: safety flags, a fresh profile, the action, then the app's URL."""
    return [binary, *FLAGS, f"--host-resolver-rules={site.resolver_rules}",
            f"--user-data-dir={profile}", *action, site.url]


def _run(argv: list[str], timeout: float) -> str:
    """Run Chromium in its own process group; its stdout. Kills the group on a timeout."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:  # a timeout, or an interrupt: no Chromium left behind
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise BrowserError(f"chromium did not finish within {timeout:g} s") from None
        raise
    if proc.returncode != 0:
        tail = " / ".join(err.strip().splitlines()[-3:])
        raise BrowserError(f"chromium exited with {proc.returncode}: {tail}")
    return out


def run_chromium(site: AppSite, action: list[str], timeout: float = 30) -> tuple[str, float]:
    """One Chromium start with a new empty profile: (stdout, seconds)."""
    binary = find_chromium()
    with tempfile.TemporaryDirectory(prefix="tp5-chromium-") as profile:
        started = time.monotonic()
        out = _run(chromium_argv(binary, site, Path(profile), action), timeout)
        return out, time.monotonic() - started


def load_page(site: AppSite, timeout: float = 30) -> Load:
    """Open the app once (`--dump-dom`) and read the facts the page shows."""
    dom, seconds = run_chromium(site, ["--dump-dom"], timeout)
    return Load(parse_html(dom), seconds)


def save_screenshot(site: AppSite, path: Path, size: tuple[int, int] = (1000, 700),
                    timeout: float = 30) -> float:
    """Open the app once and save what it shows as a PNG at path; Chromium's seconds."""
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    _, seconds = run_chromium(site, [f"--screenshot={target}",
                                     f"--window-size={size[0]},{size[1]}"], timeout)
    if not target.exists() or target.read_bytes()[:8] != PNG_SIGNATURE:
        raise BrowserError(f"chromium wrote no PNG at {target}")
    return seconds
