"""The deployed app in a real browser (Debian's headless Chromium) and through curl.

Chromium opens http://app_nulle.tp5.b2/ by its name (its own resolver rules map that name to
the VIP and make every other name fail); each load is a new Chromium with an empty profile,
so a new connection and session, and the proxies' round-robin moves between web servers.
curl (Accept */*) still gets the plain text, with the same facts.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.guard import check_addresses
from tasks.core.settings import REPO_ROOT, load_settings
from tasks.web.browser import AppSite, checked_site, load_page
from tasks.web.page import parse_html, parse_text, served_by_node

pytestmark = pytest.mark.lab

APP = "app_nulle.tp5.b2"
VIP = "10.5.1.110"
BRIDGE = "tp5br0"
WEB = {"web1.tp5.b2", "web2.tp5.b2", "web3.tp5.b2"}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# The primary is db1 after a deploy; db2 after a database failover drill.
DB_LINE = re.compile(r"visits=\d+ id=\d+ host=10\.5\.1\.21[12]")
REPLICA_LINE = re.compile(r"visits=\d+ host=10\.5\.1\.21[12]")


@pytest.fixture(scope="module")
def site(deployed: object) -> AppSite:
    assert check_addresses(BRIDGE, [VIP]) == []  # the VIP is behind the lab bridge
    found = checked_site(load_settings())
    assert found == AppSite(APP, VIP)
    return found


def curl(accept: str | None) -> tuple[str, str]:
    """(headers, body) of GET http://app_nulle.tp5.b2/ (the name from /etc/hosts' lab block)."""
    extra = [] if accept is None else ["-H", f"Accept: {accept}"]
    out = subprocess.run(["curl", "-4", "--noproxy", "*", "-s", "-D", "-", "--max-time", "5",
                          *extra, f"http://{APP}/"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    headers, _, body = out.stdout.partition("\n\n")  # (text mode: \r\n read as \n)
    assert headers.startswith("HTTP/1.1 200"), headers
    return headers, body


def header(headers: str, name: str) -> str:
    match = re.search(rf"^{name}: (.*?)\r?$", headers, re.MULTILINE | re.IGNORECASE)
    assert match, f"no {name} header in:\n{headers}"
    return match.group(1)


def test_chromium_shows_the_app_served_by_several_web_servers(site: AppSite) -> None:
    served = []
    for _ in range(6):
        facts = load_page(site).facts
        assert facts.get("app") == "app_nulle", facts
        node = served_by_node(facts)
        assert node in WEB, facts
        assert re.fullmatch(rf"{re.escape(node)} 10\.5\.1\.1[1-3]", facts["served-by"])
        assert re.fullmatch(r"[0-9a-zA-Z,-]{16,} hits=1", facts["session"]), facts  # new profile
        assert DB_LINE.fullmatch(facts["db"]), facts
        assert REPLICA_LINE.fullmatch(facts["db-replica"]), facts
        served.append(node)
    assert len(set(served)) >= 2, served  # round-robin between the web servers


def test_curl_keeps_the_plain_text_with_the_same_facts(site: AppSite) -> None:
    for accept in (None, "*/*"):  # curl's own default, then said explicitly
        headers, body = curl(accept)
        assert header(headers, "Content-Type") == "text/plain; charset=utf-8"
        assert "Accept" in re.split(r"\s*,\s*", header(headers, "Vary"))  # (Apache adds more)
        facts = parse_text(body)
        assert list(facts) == ["app", "served-by", "session", "db", "db-replica"]
        assert body == "".join(f"{key}: {value}\n" for key, value in facts.items())
        assert header(headers, "X-Served-By") == facts["served-by"]
        assert DB_LINE.fullmatch(facts["db"]) and REPLICA_LINE.fullmatch(facts["db-replica"])
    headers, body = curl(BROWSER_ACCEPT)  # what a browser asks for: the same facts in HTML
    assert header(headers, "Content-Type") == "text/html; charset=utf-8"
    facts = parse_html(body)
    assert list(facts) == ["app", "served-by", "session", "db", "db-replica"]
    assert header(headers, "X-Served-By") == facts["served-by"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_browse_runbook_prints_each_load_and_saves_a_screenshot(site: AppSite,
                                                               tmp_path: Path) -> None:
    shot = tmp_path / "app.png"
    run = subprocess.run([sys.executable, "runbooks/browse.py", "--loads", "2",
                          "--screenshot", str(shot)], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    loads = re.findall(r"^load \d: [\d.]+ s  served-by: (web\d\.tp5\.b2) ", run.stdout, re.M)
    assert len(loads) == 2, run.stdout
    assert f"screenshot: {shot}" in run.stdout
    assert png_size(shot) == (1000, 700)
