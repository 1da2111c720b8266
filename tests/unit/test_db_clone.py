"""The rebuild's shell commands and the backup's GTID position (tasks.db.clone, pure)."""

from __future__ import annotations

import pytest

from tasks.db.clone import (
    ClonePaths,
    binlog_info_command,
    extract_command,
    parse_binlog_info,
    prepare_command,
    swap_command,
)
from tasks.db.sql import DbError


def test_paths_beside_the_data_directory() -> None:
    paths = ClonePaths.of("/var/lib/mysql/")
    assert (paths.datadir, paths.staging, paths.aside) == (
        "/var/lib/mysql", "/var/lib/mysql.rebuild", "/var/lib/mysql.before-rebuild")


@pytest.mark.parametrize("datadir", ["/", "/var", "", "var/lib/mysql", "/var/lib/my sql",
                                     "/var/lib/../mysql", "/var/lib/mysql;rm -rf /",
                                     "/var/lib/$(x)"])
def test_an_unexpected_data_directory_is_refused(datadir: str) -> None:
    with pytest.raises(DbError, match="refusing to rebuild"):
        ClonePaths.of(datadir)


def test_the_commands_use_the_staging_directory_and_swap_only_a_prepared_clone() -> None:
    paths = ClonePaths.of("/var/lib/mysql")
    assert extract_command(paths) == ("rm -rf /var/lib/mysql.rebuild && mkdir -p "
                                      "/var/lib/mysql.rebuild && mbstream -x -C "
                                      "/var/lib/mysql.rebuild")
    assert prepare_command(paths).endswith("--target-dir=/var/lib/mysql.rebuild")
    assert "xtrabackup_binlog_info" in binlog_info_command(paths)
    swap = swap_command(paths)
    assert swap.startswith("set -e; grep -Eq")  # an unprepared clone never replaces data
    assert swap.index("! pidof mariadbd") < swap.index("mv /var/lib/mysql ")
    assert "mv /var/lib/mysql.rebuild /var/lib/mysql;" in swap
    assert swap.endswith("chown -R mysql:mysql /var/lib/mysql")


def test_the_backup_position_is_read_and_checked() -> None:
    assert parse_binlog_info("tp5-bin.000003\t778\t1-1-4,0-1-42\n") == "0-1-42,1-1-4"
    for bad in ("", "tp5-bin.000003\t778\t\n", "tp5-bin.000003\t778", "a\tb\t0-1-x"):
        with pytest.raises(DbError, match="GTID"):
            parse_binlog_info(bad)
