"""The shell commands that re-clone a db node from the primary with mariadb-backup (pure).

The backup streams out of the primary (``mariadb-backup --backup --stream=mbstream``, as the
node's root over the unix socket) into ``mbstream -x`` on the target, in a staging directory
beside the target's data directory; it is prepared there (``--prepare``). Only then is
MariaDB stopped on the target and the directories swapped (the old data kept aside, the one
before it removed), so an interruption before the swap leaves the target as it was, and each
run starts again from a fresh staging directory. Every path is checked against a strict
pattern and quoted.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from tasks.db import gtid
from tasks.db.sql import DbError

# mariadb-backup names it xtrabackup_binlog_info in 10.11 (mariadb_backup_binlog_info later).
BINLOG_INFO = ("xtrabackup_binlog_info", "mariadb_backup_binlog_info")
DATADIR = re.compile(r"/(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*")
BACKUP = "mariadb-backup --backup --stream=mbstream --target-dir=/tmp --user=root"
PREPARED = "backup_type = (log-applied|full-prepared)"
STOP = ("if pidof mariadbd >/dev/null; then service mariadb stop; fi; "
        "! pidof mariadbd >/dev/null")
START = "service mariadb start"


@dataclass(frozen=True)
class ClonePaths:
    """The target's data directory, the staging directory the clone is made in, and where
    the replaced data is kept."""

    datadir: str

    @classmethod
    def of(cls, datadir: str) -> ClonePaths:
        """From ``@@datadir`` (trailing slash dropped); DbError for anything unexpected."""
        path = datadir.rstrip("/")
        if not DATADIR.fullmatch(path) or ".." in path.split("/") or path.count("/") < 2:
            raise DbError(f"unexpected data directory {datadir!r}: refusing to rebuild it")
        return cls(path)

    @property
    def staging(self) -> str:
        return self.datadir + ".rebuild"

    @property
    def aside(self) -> str:
        return self.datadir + ".before-rebuild"


def extract_command(paths: ClonePaths) -> str:
    """The target's end of the stream: a fresh staging directory, mbstream unpacks into it."""
    q = shlex.quote(paths.staging)
    return f"rm -rf {q} && mkdir -p {q} && mbstream -x -C {q}"


def prepare_command(paths: ClonePaths) -> str:
    return f"mariadb-backup --prepare --target-dir={shlex.quote(paths.staging)}"


def binlog_info_command(paths: ClonePaths) -> str:
    q = shlex.quote(paths.staging)
    return " || ".join(f"cat {q}/{name} 2>/dev/null" for name in BINLOG_INFO)


def swap_command(paths: ClonePaths) -> str:
    """MariaDB stopped: the prepared clone becomes the data directory, owned by mysql. Safe
    to run again: a missing data directory (interrupted between the moves) is skipped."""
    data, staging, aside = (shlex.quote(p) for p in (paths.datadir, paths.staging,
                                                       paths.aside))
    return (f"set -e; grep -Eq '{PREPARED}' {staging}/xtrabackup_checkpoints; "
            f"! pidof mariadbd >/dev/null; "
            f"if [ -d {data} ]; then rm -rf {aside}; mv {data} {aside}; fi; "
            f"mv {staging} {data}; chown -R mysql:mysql {data}")


def parse_binlog_info(text: str) -> str:
    """The GTID position of the backup from its binlog info file (``file<TAB>pos<TAB>gtid``);
    DbError when there is none (the primary's binary log was off?)."""
    fields = text.strip().split("\t")
    if len(fields) != 3 or not fields[2].strip():
        raise DbError(f"the backup has no GTID position (binlog info {text.strip()!r})")
    try:
        position = gtid.normalize(fields[2])
    except gtid.GtidError as exc:
        raise DbError(f"the backup's binlog info: {exc}") from exc
    if not position:
        raise DbError(f"the backup has no GTID position (binlog info {text.strip()!r})")
    return position
