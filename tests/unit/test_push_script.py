"""The push script's undo logic, run for real with sh on local files (no SSH)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tasks.deploy.push import (
    VALIDATION_FAILED,
    WRITE_FAILED,
    CurrentFile,
    DesiredFile,
    apply_script,
    diff_file,
)

OWNER = f"{os.getuid()}:{os.getgid()}"


def run(files: list[DesiredFile], validate: str | None = None) -> int:
    script = apply_script(files, validate, "true")
    return subprocess.run(["sh", "-s"], input=script, text=True, capture_output=True).returncode


def want(path: Path, content: str) -> DesiredFile:
    return DesiredFile(str(path), content, owner=OWNER)


def test_changes_are_applied_and_no_backup_is_left(tmp_path: Path) -> None:
    old = tmp_path / "a.conf"
    old.write_text("old\n")
    new = tmp_path / "sub" / "b.conf"
    assert run([want(old, "A\n"), want(new, "B\n")], validate="true") == 0
    assert old.read_text() == "A\n" and new.read_text() == "B\n"
    assert sorted(p.name for p in tmp_path.rglob("*.tp5-*")) == []


def test_a_rejected_candidate_puts_every_file_back(tmp_path: Path) -> None:
    old = tmp_path / "a.conf"
    old.write_text("old\n")
    new = tmp_path / "b.conf"
    assert run([want(old, "A\n"), want(new, "B\n")], validate="false") == VALIDATION_FAILED
    assert old.read_text() == "old\n" and not new.exists()
    assert list(tmp_path.glob("*.tp5-*")) == []


def test_a_failed_write_undoes_only_what_it_touched(tmp_path: Path) -> None:
    first, third = tmp_path / "1.conf", tmp_path / "3.conf"
    first.write_text("one\n")
    third.write_text("three\n")
    (tmp_path / "blocker").write_text("a file where a directory should be\n")
    broken = tmp_path / "blocker" / "2.conf"
    files = [want(first, "ONE\n"), want(broken, "TWO\n"), want(third, "THREE\n")]
    assert run(files, validate="true") == WRITE_FAILED
    assert first.read_text() == "one\n"  # put back
    assert third.read_text() == "three\n"  # never touched, not deleted


def test_a_secret_file_says_it_differs_but_not_how() -> None:
    current = CurrentFile("/etc/app/db.php", "file", "$db_pass = 'old';\n", "0640", "root:www")
    desired = DesiredFile("/etc/app/db.php", "$db_pass = 'new-secret';\n", "0640", "root:www",
                          secret=True)
    diff = diff_file(current, desired)
    assert diff and "secret content differs" in diff
    assert "new-secret" not in diff and "old" not in diff
    assert diff_file(current, DesiredFile(**{**desired.__dict__, "content": current.content})) == ""
