"""The page's discovery of the primary, without a database: every node of $db_nodes is asked,
and a page with none writable says so (details in the log only, nothing cached)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.core.nornir_build import build_nornir
from tasks.deploy.render import host_context, render_template

PHP = shutil.which("php")


@pytest.mark.skipif(PHP is None, reason="php is not installed (apt-get install php-cli)")
def test_no_writable_node_is_reported_and_every_node_was_asked(tmp_path: Path) -> None:
    inventory = build_nornir(check_lab=False).inventory
    page = render_template("php/index.php.j2",
                           **host_context(inventory.hosts["web1"], inventory))
    cache = tmp_path / "primary"
    script = tmp_path / "index.php"
    script.write_text(page.replace("/etc/app_nulle/db.php", str(tmp_path / "db.php"))
                      .replace("/tmp/app_nulle-web1-db-primary", str(cache)))
    (tmp_path / "db.php").write_text(
        '<?php\n$db_host = "127.0.0.1"; $db_port = 9; $db_name = "app"; $db_user = "app"; '
        '$db_pass = "x";\n$db_nodes = [["127.0.0.1", 9], ["127.0.0.1", 7]];\n')
    cache.write_text("127.0.0.1 9")  # a remembered primary that does not answer
    log = tmp_path / "error.log"
    answer = subprocess.run([str(PHP), "-d", f"session.save_path={tmp_path}", "-d",
                             f"error_log={log}", str(script)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert answer.returncode == 0, answer.stderr
    assert "db: unavailable (database error, see the web server error log)\n" in answer.stdout
    logged = log.read_text()
    assert re.search(r"no writable database node: 127\.0\.0\.1:9: .*; 127\.0\.0\.1:7: ",
                     logged), logged
    assert not cache.exists()  # forgotten: the next request asks again
