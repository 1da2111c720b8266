"""The page's session store, without a database: with session_store db the session lives in
the database (a dead one means no session, said plainly, details in the log), with files it
lives on the web server's disk; without database settings (db tier not deployed yet) the
page keeps PHP's files whatever the store."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from nornir.plugins.inventory import SimpleInventory

from tasks.core.settings import load_settings
from tasks.deploy.render import host_context, render_template

PHP = shutil.which("php")
DEAD_DB = ('<?php\n$db_host = "127.0.0.1"; $db_port = 9; $db_name = "app"; $db_user = "app"; '
           '$db_pass = "x";\n$db_nodes = [["127.0.0.1", 9]];\n')

pytestmark = pytest.mark.skipif(PHP is None, reason="php is not installed (apt-get install "
                                                    "php-cli)")


def page(tmp_path: Path, store: str) -> Path:
    """web1's page rendered with `store`, its db.php and primary cache under tmp_path."""
    settings = load_settings()
    groups = yaml.safe_load(settings.groups_file.read_text())
    groups["web"]["data"]["session_store"] = store
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(groups))
    inventory = SimpleInventory(str(settings.hosts_file), str(tmp_path / "groups.yaml"),
                                str(settings.defaults_file)).load()
    text = render_template("php/index.php.j2", **host_context(inventory.hosts["web1"], inventory))
    script = tmp_path / "index.php"
    script.write_text(text.replace("/etc/app_nulle/db.php", str(tmp_path / "db.php"))
                      .replace("/tmp/app_nulle-web1-db-primary", str(tmp_path / "primary")))
    (tmp_path / "sessions").mkdir()
    return script


def answer(tmp_path: Path, script: Path) -> str:
    done = subprocess.run([str(PHP), "-d", f"session.save_path={tmp_path / 'sessions'}", "-d",
                           f"error_log={tmp_path / 'error.log'}", str(script)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def session_files(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "sessions").iterdir()]


def test_the_db_store_needs_the_database(tmp_path: Path) -> None:
    script = page(tmp_path, "db")
    (tmp_path / "db.php").write_text(DEAD_DB)
    text = answer(tmp_path, script)
    assert "session: unavailable (session store error, see the web server error log)\n" in text
    assert "127.0.0.1" not in text.split("db:")[0]  # no detail for the client
    log = (tmp_path / "error.log").read_text()
    assert re.search(r"app_nulle: session read: no writable database node: 127\.0\.0\.1:9",
                     log), log
    assert session_files(tmp_path) == []  # never the web server's disk instead


def test_the_files_store_keeps_the_session_on_the_web_server(tmp_path: Path) -> None:
    script = page(tmp_path, "files")
    (tmp_path / "db.php").write_text(DEAD_DB)
    text = answer(tmp_path, script)
    found = re.search(r"^session: ([0-9a-v]{26}) hits=1$", text, re.MULTILINE)
    assert found, text
    assert session_files(tmp_path) == [f"sess_{found.group(1)}"]
    assert "DbSessionHandler(" in script.read_text()  # the same page, the store a setting
    assert "const SESSION_STORE = 'files';" in script.read_text()


def test_without_database_settings_the_db_store_keeps_files(tmp_path: Path) -> None:
    script = page(tmp_path, "db")  # no db.php: the db tier is not deployed yet
    text = answer(tmp_path, script)
    assert re.search(r"^session: [0-9a-v]{26} hits=1$", text, re.MULTILINE), text
    assert len(session_files(tmp_path)) == 1
