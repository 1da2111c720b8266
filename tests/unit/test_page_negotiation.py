"""The rendered page served by PHP's own web server on loopback: plain text for curl and
tools (Accept */* or none), a small HTML page with the same facts when the client prefers
text/html (a browser), values escaped, `Vary: Accept` on both."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nornir.plugins.inventory import SimpleInventory

from tasks.core.settings import load_settings
from tasks.deploy.files import host_files
from tasks.deploy.render import host_context, render_template
from tasks.web.page import parse_html, parse_text, served_by_node

PHP = shutil.which("php")
PAGE = "/var/www/app_nulle/index.php"
BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7")
# A db.php path full of HTML: the page shows it in "db: unavailable (no <path>)".
HOSTILE = 'no<script>alert(1)</script>&amp;"db.php'

pytestmark = pytest.mark.skipif(PHP is None, reason="php is not installed (apt-get install "
                                                    "php-cli)")


def rendered_page(host: str) -> str:
    settings = load_settings()
    inventory = SimpleInventory(str(settings.hosts_file), str(settings.groups_file),
                                str(settings.defaults_file)).load()
    context = host_context(inventory.hosts[host], inventory)
    spec = next(s for s in host_files(inventory.hosts[host]) if s.path == PAGE)
    return render_template(spec.template, **context)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`php -S 127.0.0.1:<port>` serving web2's page (its db.php path: HOSTILE, missing)."""
    root = tmp_path_factory.mktemp("www")
    missing = root / HOSTILE
    (root / "index.php").write_text(
        rendered_page("web2").replace("/etc/app_nulle/db.php", str(missing))
        .replace("/tmp/app_nulle-web2-db-primary", str(root / "primary")))
    port = free_port()
    proc = subprocess.Popen([str(PHP), "-d", f"session.save_path={root}", "-d",
                             f"error_log={root / 'error.log'}", "-S", f"127.0.0.1:{port}",
                             "-t", str(root)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "php -S did not start"
            time.sleep(0.05)
        yield port, missing
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(port: int, accept: str | None) -> tuple[str, dict[str, str], str]:
    """(content type, headers, body) of GET / with this Accept header (None: no header)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={} if accept is None else {"Accept": accept})
        answer = conn.getresponse()
        body = answer.read().decode()
        assert answer.status == 200, body
        headers = {k.lower(): v for k, v in answer.getheaders()}
    finally:
        conn.close()
    return headers["content-type"].split(";")[0], headers, body


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "text/plain"),  # no Accept header: plain text, as before
    ("*/*", "text/plain"),  # curl
    (BROWSER_ACCEPT, "text/html"),  # Chromium, Firefox send about this
    ("text/html", "text/html"),
    ("text/plain", "text/plain"),
    ("text/html;q=0.5, text/plain", "text/plain"),
    ("text/plain;q=0.4, text/*;q=0.9", "text/html"),  # text/html via text/* at 0.9 > 0.4
    ("text/plain;q=0.4, text/html;q=0.9", "text/html"),
    ("text/html;q=0, */*", "text/plain"),
    ("application/json", "text/plain"),  # neither acceptable: the text, as before
])
def test_the_client_s_preference_picks_the_form(server: tuple[int, Path], accept: str | None,
                                                expected: str) -> None:
    kind, headers, _ = get(server[0], accept)
    assert kind == expected
    assert headers["vary"] == "Accept" and headers["x-served-by"] == "web2.tp5.b2 10.5.1.12"


def test_text_and_html_show_the_same_facts(server: tuple[int, Path]) -> None:
    port, missing = server
    _, plain_headers, text = get(port, "*/*")
    _, html_headers, html = get(port, BROWSER_ACCEPT)
    as_text, as_html = parse_text(text), parse_html(html)
    assert list(as_text) == ["app", "served-by", "session", "db"]
    assert text == "".join(f"{key}: {value}\n" for key, value in as_text.items())  # nothing else
    assert list(as_html) == list(as_text)
    for key in ("app", "served-by", "db"):
        assert as_html[key] == as_text[key]
    assert as_text["db"] == f"unavailable (no {missing})"
    assert served_by_node(as_html) == "web2.tp5.b2"
    # Each request is a new session (no cookie sent): same form, another id.
    assert as_html["session"].endswith(" hits=1") and as_text["session"].endswith(" hits=1")
    assert "charset=utf-8" in plain_headers["content-type"]
    assert "charset=utf-8" in html_headers["content-type"]
    assert html_headers["content-security-policy"] == \
        "default-src 'none'; style-src 'unsafe-inline'"
    for name in ("cache-control", "x-served-by", "set-cookie"):
        assert name in plain_headers and name in html_headers


def test_html_escapes_every_value_and_loads_nothing(server: tuple[int, Path]) -> None:
    _, _, html = get(server[0], BROWSER_ACCEPT)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;&quot;db.php" in html
    assert not any(word in html.lower() for word in ("src=", "href=", "url(", "@import"))
