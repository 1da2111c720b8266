"""Reading the page's facts back (pure) and the headless Chromium command: only the app's
name resolves, to the VIP; no proxy; a fresh profile; a bounded run (no browser started)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from nornir.plugins.inventory import SimpleInventory

from tasks.core.settings import load_settings
from tasks.web import browser
from tasks.web.browser import AppSite, BrowserError, app_site, chromium_argv
from tasks.web.page import parse_html, parse_text, served_by_node

TEXT = ("app: app_nulle\nserved-by: web3.tp5.b2 10.5.1.13\nsession: abc hits=2\n"
        "db: visits=7 id=7 host=10.5.1.211\ndb-replica: visits=7 host=10.5.1.212\n")
DOM = """<!DOCTYPE html><html><head><title>x</title></head><body><h1>app_nulle</h1><dl>
<dt>app</dt><dd id="app">app_nulle</dd>
<dt>served-by</dt><dd id="served-by">web3.tp5.b2 10.5.1.13</dd>
<dt>session</dt><dd id="session">abc hits=2</dd>
<dt>db</dt><dd id="db">visits=7 id=7 host=10.5.1.211</dd>
<dt>db-replica</dt><dd id="db-replica">visits=7 host=10.5.1.212</dd>
</dl></body></html>"""


def test_text_and_html_parse_to_the_same_facts() -> None:
    assert parse_text(TEXT) == parse_html(DOM)
    assert parse_text(TEXT)["db-replica"] == "visits=7 host=10.5.1.212"
    assert served_by_node(parse_html(DOM)) == "web3.tp5.b2"


def test_parsers_keep_only_the_page_s_facts() -> None:
    escaped = '<dd id="db">unavailable (no /x/&lt;b&gt;&amp;&quot;.php)</dd><dd id="other">1</dd>'
    assert parse_html(escaped) == {"db": 'unavailable (no /x/<b>&".php)'}
    assert parse_text("HTTP/1.1 200 OK\nother: 1\ndb: a\ndb: b\n") == {"db": "a"}
    # An error page (name not resolved, proxy error...): no facts, no served-by.
    assert parse_html("<html><body><h1>502 Bad Gateway</h1></body></html>") == {}
    assert served_by_node({}) is None


def test_the_app_site_comes_from_the_inventory() -> None:
    settings = load_settings()
    inventory = SimpleInventory(str(settings.hosts_file), str(settings.groups_file),
                                str(settings.defaults_file)).load()
    site = app_site(inventory)
    assert site == AppSite("app_nulle.tp5.b2", "10.5.1.110")
    assert site.url == "http://app_nulle.tp5.b2/"


def test_chromium_reaches_only_the_app(tmp_path: Path) -> None:
    site = AppSite("app_nulle.tp5.b2", "10.5.1.110")
    argv = chromium_argv("/usr/bin/chromium", site, tmp_path, ["--dump-dom"])
    assert argv[0] == "/usr/bin/chromium" and argv[-1] == "http://app_nulle.tp5.b2/"
    rules = [a for a in argv if a.startswith("--host-resolver-rules=")]
    # The first rule that matches wins: the app's name, then every other name fails.
    assert rules == ["--host-resolver-rules=MAP app_nulle.tp5.b2 10.5.1.110, MAP * ~NOTFOUND"]
    for flag in ("--headless", "--no-proxy-server", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic",
                 f"--user-data-dir={tmp_path}", "--dump-dom"):
        assert flag in argv
    assert argv.index("--dump-dom") < len(argv) - 1


def test_a_missing_chromium_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrowserError, match="chromium is not installed: run `make setup`"):
        browser.find_chromium()


def gone(pid: int) -> bool:
    """True once pid has exited (no such process, or a zombie waiting for its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_a_hung_browser_is_killed_with_its_children(tmp_path: Path) -> None:
    # A stand-in that never finishes and starts a child in its process group.
    pid_file = tmp_path / "child.pid"
    # (the child's output goes elsewhere: only the group kill can end it early)
    script = ("import pathlib, subprocess, time; child = subprocess.Popen(['sleep', '60'], "
              "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
              f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid)); time.sleep(60)")
    with pytest.raises(BrowserError, match="did not finish within 2 s"):
        browser._run([sys.executable, "-c", script], timeout=2)
    child = int(pid_file.read_text())
    for _ in range(50):  # the kernel delivers SIGKILL at once; reaping may lag
        if gone(child):
            break
        time.sleep(0.1)
    assert gone(child), "the browser's child outlived the timeout"


def test_a_failing_browser_is_a_clear_error() -> None:
    script = "import sys; print('first', file=sys.stderr); print('boom', file=sys.stderr); " \
             "sys.exit(3)"
    with pytest.raises(BrowserError, match="exited with 3: first / boom"):
        browser._run([sys.executable, "-c", script], timeout=10)
