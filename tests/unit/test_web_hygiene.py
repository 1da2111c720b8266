"""Web tier hygiene in the rendered files: no banners, X-Real-IP trusted from the proxies
only, database errors logged rather than shown, a strict session cookie (the lab test
tests/lab/test_safety.py checks the same on the running daemons)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from nornir.plugins.inventory import SimpleInventory

from tasks.core.settings import load_settings
from tasks.deploy.files import host_files
from tasks.deploy.render import host_context, render_template

PHP = shutil.which("php")


def rendered(host: str) -> dict[str, str]:
    """The repository inventory's rendered files of ``host`` (path -> content)."""
    settings = load_settings()
    inventory = SimpleInventory(str(settings.hosts_file), str(settings.groups_file),
                                str(settings.defaults_file)).load()
    context = host_context(inventory.hosts[host], inventory)
    return {spec.path: render_template(spec.template, **context)
            for spec in host_files(inventory.hosts[host])
            if spec.template is not None and not spec.secret}  # db.php: its own tests


def test_no_version_banners() -> None:
    for proxy in ("rp1", "rp2"):
        assert "    server_tokens off;\n" in rendered(proxy)["/etc/nginx/conf.d/app_nulle.conf"]
    site = rendered("web1")["/etc/apache2/sites-available/app_nulle.conf"]
    assert re.search(r"^ServerTokens Prod$", site, re.MULTILINE)
    assert re.search(r"^ServerSignature Off$", site, re.MULTILINE)


def test_x_real_ip_is_trusted_from_the_inventory_proxies_only() -> None:
    files = rendered("web2")
    site = files["/etc/apache2/sites-available/app_nulle.conf"]
    assert re.findall(r"^RemoteIPInternalProxy (\S+)$", site, re.MULTILINE) == \
        ["10.5.1.111", "10.5.1.112"]
    assert "RemoteIPHeader X-Real-IP\n" in site
    assert "LoadModule remoteip_module" in site  # works whether a2enmod ran or not
    page = files["/var/www/app_nulle/index.php"]
    assert "HTTP_X_REAL_IP" not in page  # the header itself is never read by the page


def test_the_session_cookie_is_strict() -> None:
    page = rendered("web3")["/var/www/app_nulle/index.php"]
    settings = page[:page.index("session_start")]
    for line in ("ini_set('session.use_strict_mode', '1');",
                 "ini_set('session.cookie_httponly', '1');",
                 "ini_set('session.cookie_samesite', 'Lax');"):
        assert line in settings


@pytest.mark.skipif(PHP is None, reason="php is not installed (apt-get install php-cli)")
def test_a_database_error_is_logged_not_shown(tmp_path: Path) -> None:
    page = rendered("web1")["/var/www/app_nulle/index.php"]
    script = tmp_path / "index.php"
    script.write_text(page.replace("/etc/app_nulle/db.php", str(tmp_path / "db.php"))
                      .replace("/tmp/app_nulle-web1-db-primary", str(tmp_path / "primary")))
    (tmp_path / "db.php").write_text('<?php\n$db_host = "127.0.0.1"; $db_port = 9; '
                                     '$db_name = "app"; $db_user = "app"; $db_pass = "x";\n')
    log = tmp_path / "error.log"
    answer = subprocess.run([str(PHP), "-d", f"session.save_path={tmp_path}", "-d",
                             f"error_log={log}", str(script)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert answer.returncode == 0, answer.stderr
    assert "db: unavailable (database error, see the web server error log)\n" in answer.stdout
    assert "refused" not in answer.stdout.lower() and "127.0.0.1" not in answer.stdout
    # The details are in the log: the first ask (the session's) names the refusal, and the
    # write, which then skips the node that did not answer, names the node.
    logged = log.read_text()
    assert re.search(r"app_nulle: session read: .*127\.0\.0\.1:9: .*refused", logged,
                     re.IGNORECASE), logged
    assert re.search(r"app_nulle: database error: no writable database node: 127\.0\.0\.1:9",
                     logged), logged
    # A broken db.php: its PHP error is logged too, the client gets no detail.
    (tmp_path / "db.php").write_text('<?php\n$db_host = \n')
    answer = subprocess.run([str(PHP), "-d", f"session.save_path={tmp_path}", "-d",
                             f"error_log={log}", str(script)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert "syntax error" not in answer.stdout and "syntax error" in log.read_text()
