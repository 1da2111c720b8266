"""The page's discovery of the primary, without a database: every node of $db_nodes is asked,
and a page with none writable says so (details in the log only, nothing cached)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tasks.core.nornir_build import build_nornir
from tasks.deploy.render import host_context, render_template

PHP = shutil.which("php")


def page_over(tmp_path: Path, nodes: str) -> tuple[Path, Path]:
    """The page rendered for web1 with its cache and db.php in tmp_path: (script, cache)."""
    inventory = build_nornir(check_lab=False).inventory
    page = render_template("php/index.php.j2",
                           **host_context(inventory.hosts["web1"], inventory))
    cache, script = tmp_path / "primary", tmp_path / "index.php"
    script.write_text(page.replace("/etc/app_nulle/db.php", str(tmp_path / "db.php"))
                      .replace("/tmp/app_nulle-web1-db-primary", str(cache)))
    (tmp_path / "db.php").write_text(
        '<?php\n$db_host = "127.0.0.1"; $db_port = 9; $db_name = "app"; $db_user = "app"; '
        f'$db_pass = "x";\n$db_nodes = {nodes};\n')
    return script, cache


def request(script: Path, tmp_path: Path) -> tuple[str, str]:
    """One request: its answer, and what it wrote to the error log."""
    log = tmp_path / "error.log"
    log.unlink(missing_ok=True)
    answer = subprocess.run([str(PHP), "-d", f"session.save_path={tmp_path}", "-d",
                             f"error_log={log}", str(script)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert answer.returncode == 0, answer.stderr
    return answer.stdout, log.read_text()


@pytest.mark.skipif(PHP is None, reason="php is not installed (apt-get install php-cli)")
def test_no_writable_node_is_reported_and_every_node_was_asked(tmp_path: Path) -> None:
    script, cache = page_over(tmp_path, '[["127.0.0.1", 9], ["127.0.0.1", 7]]')
    cache.write_text("127.0.0.1 9")  # a remembered primary that does not answer
    answer, logged = request(script, tmp_path)
    assert "db: unavailable (database error, see the web server error log)\n" in answer
    assert re.search(r"no writable database node: 127\.0\.0\.1:9: .*; 127\.0\.0\.1:7: ",
                     logged), logged
    assert not cache.exists()  # forgotten: the next request asks again


@pytest.mark.skipif(PHP is None, reason="php is not installed (apt-get install php-cli)")
def test_a_node_that_did_not_answer_is_skipped_by_the_next_requests_for_a_while(
    tmp_path: Path,
) -> None:
    script, cache = page_over(tmp_path, '[["127.0.0.1", 9]]')
    _, first = request(script, tmp_path)
    # Asked once (the request's later discoveries skip it): suspect from now on.
    assert "127.0.0.1:9: Connection refused" in first, first
    suspects = list(tmp_path.glob("primary-suspect-*"))
    assert len(suspects) == 1
    _, second = request(script, tmp_path)
    assert "Connection refused" not in second, second
    assert "127.0.0.1:9: skipped (did not answer in the last 2 s)" in second, second
    # Its time is over: the next request asks it again and marks it again.
    suspects[0].write_text(str(float(suspects[0].read_text()) - 2.5))
    _, third = request(script, tmp_path)
    assert "127.0.0.1:9: Connection refused" in third, third
    assert float(suspects[0].read_text()) > time.time() - 2.0
