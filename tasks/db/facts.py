"""Facts about the databases (pure parsers of SQL rows) and the changes they call for.

Everything here is pure: rows in, data or planned statements out; tested with rows captured
from the lab's MariaDB 10.11.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Errors of the replica's IO thread that a new CHANGE MASTER (address, account, TLS) may cure.
IO_ERRORS_NEEDING_CHANGE = frozenset({1045, 2003, 2005, 2026, 2061})
FORBIDDEN_ADMIN_PRIVILEGES = ("SUPER", "READ_ONLY ADMIN", "ALL PRIVILEGES")


@dataclass(frozen=True)
class ReplicaStatus:
    """One row of SHOW SLAVE STATUS, reduced to what deploy and verify need."""

    master_host: str
    master_port: int
    master_user: str
    io_running: str
    sql_running: str
    io_errno: int
    io_error: str
    sql_errno: int
    sql_error: str
    seconds_behind: int | None
    using_gtid: str
    gtid_io_pos: str
    ssl_allowed: str = "No"  # Master_SSL_Allowed
    ssl_verify: str = "No"  # Master_SSL_Verify_Server_Cert

    @property
    def verified_tls(self) -> bool:
        """Replication is configured over TLS with the primary's certificate checked."""
        return self.ssl_allowed == "Yes" and self.ssl_verify == "Yes"

    @property
    def running(self) -> bool:
        return self.io_running == "Yes" and self.sql_running == "Yes"

    @property
    def last_error(self) -> str:
        """'' when no error, else the IO and/or SQL thread's last error with its number."""
        parts = []
        if self.io_errno:
            parts.append(f"IO thread error {self.io_errno}: {self.io_error}")
        if self.sql_errno:
            parts.append(f"SQL thread error {self.sql_errno}: {self.sql_error}")
        return "; ".join(parts)

    @property
    def healthy(self) -> bool:
        """Both threads running, no error, no lag."""
        return self.running and not self.last_error and self.seconds_behind == 0

    def points_at(self, host: str, port: int, user: str, tls: bool = False) -> bool:
        """Configured for this primary and account, with GTID from the replica's position,
        over verified TLS when `tls` (real machines), plain otherwise (the lab)."""
        wanted_tls = ("Yes", "Yes") if tls else ("No", "No")
        return ((self.master_host, self.master_port, self.master_user, self.using_gtid,
                 (self.ssl_allowed, self.ssl_verify))
                == (host, port, user, "Slave_Pos", wanted_tls))


def parse_slave_status(rows: list[Mapping[str, Any]]) -> ReplicaStatus | None:
    """SHOW SLAVE STATUS rows (dicts) to a ReplicaStatus; None when no primary is set."""
    if not rows or not rows[0].get("Master_Host"):
        return None
    row = rows[0]
    behind = row.get("Seconds_Behind_Master")
    return ReplicaStatus(
        master_host=str(row["Master_Host"]),
        master_port=int(row.get("Master_Port") or 0),
        master_user=str(row.get("Master_User") or ""),
        io_running=str(row.get("Slave_IO_Running") or "No"),
        sql_running=str(row.get("Slave_SQL_Running") or "No"),
        io_errno=int(row.get("Last_IO_Errno") or 0),
        io_error=str(row.get("Last_IO_Error") or ""),
        sql_errno=int(row.get("Last_SQL_Errno") or 0),
        sql_error=str(row.get("Last_SQL_Error") or ""),
        seconds_behind=None if behind is None or behind == "" else int(behind),
        using_gtid=str(row.get("Using_Gtid") or "No"),
        gtid_io_pos=str(row.get("Gtid_IO_Pos") or ""),
        ssl_allowed=str(row.get("Master_SSL_Allowed") or "No"),
        ssl_verify=str(row.get("Master_SSL_Verify_Server_Cert") or "No"),
    )


def replica_actions(status: ReplicaStatus | None, host: str, port: int, user: str,
                    tls: bool = False) -> list[str]:
    """What a replica needs: 'change_master' and/or 'start' (empty: leave it alone).

    `tls`: replication must run over verified TLS (real machines); a replica configured
    otherwise is pointed again (the lab: plain, so a node that had TLS is pointed again too).

    A replica pointed at the right primary is never reconfigured unless its IO thread stopped
    on a connection or login error; a stopped one is only started again (it resumes from its
    GTID position, so no row is skipped); a running one is untouched.
    """
    if status is None or not status.points_at(host, port, user, tls):
        return ["change_master", "start"]
    if status.io_running != "Yes" and status.io_errno in IO_ERRORS_NEEDING_CHANGE:
        return ["change_master", "start"]
    if not status.running:
        return ["start"]
    return []


def parse_gtid_pos(text: str) -> dict[int, int]:
    """'0-1-12,1-2-3' to {domain: sequence number}."""
    result: dict[int, int] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        domain, _server, seq = item.split("-")
        result[int(domain)] = int(seq)
    return result


def gtid_reached(current: str, wanted: str) -> bool:
    """True when position `current` includes every domain's sequence of `wanted`."""
    have = parse_gtid_pos(current)
    return all(have.get(domain, -1) >= seq for domain, seq in parse_gtid_pos(wanted).items())


def grant_privileges(grants: Iterable[str]) -> dict[str, set[str]]:
    """SHOW GRANTS lines to {scope: privileges}, e.g. {'*.*': {'SELECT', 'SUPER'}}."""
    result: dict[str, set[str]] = {}
    for line in grants:
        if not line.startswith("GRANT ") or " ON " not in line:
            continue
        privs, _, rest = line[len("GRANT "):].partition(" ON ")
        if privs.startswith("PROXY"):
            continue
        scope = rest.split(" TO ", 1)[0].strip().replace("`", "")
        result.setdefault(scope, set()).update(p.strip() for p in privs.split(","))
    return result


def forbidden_admin_privileges(grants: Iterable[str]) -> list[str]:
    """Global privileges that would let an account write on a read-only replica."""
    granted = grant_privileges(grants).get("*.*", set())
    return [p for p in FORBIDDEN_ADMIN_PRIVILEGES if p in granted]


@dataclass(frozen=True)
class Account:
    """A database account the primary must hold exactly: password hash and privileges."""

    user: str
    host: str
    password_hash: str
    privileges: frozenset[str]
    scope: str
    require_ssl: bool = False  # REQUIRE SSL (real machines: the replication account)

    @property
    def name(self) -> str:
        return f"'{self.user}'@'{self.host}'"

    @property
    def require_clause(self) -> str:
        return "REQUIRE SSL" if self.require_ssl else "REQUIRE NONE"


@dataclass(frozen=True)
class Statement:
    """One SQL statement to run, with a description safe to print (no secret)."""

    describe: str
    sql: str
    args: tuple[Any, ...] = ()


def account_statements(
    desired: list[Account],
    current_hashes: Mapping[tuple[str, str], str],
    current_privileges: Mapping[tuple[str, str], set[str]],
    managed_users: Iterable[str],
    current_ssl: Mapping[tuple[str, str], str] | None = None,
) -> list[Statement]:
    """Statements that make the accounts of managed_users exactly `desired` (pure).

    current_hashes: (user, host) -> authentication_string; current_privileges:
    (user, host) -> {'<PRIV> ON <scope>'}; current_ssl: (user, host) -> mysql.user's
    ssl_type ('' none, 'ANY' for REQUIRE SSL). Accounts of managed users that are not
    desired (e.g. a web server removed from the inventory) are dropped.
    """
    current_ssl = current_ssl or {}
    out: list[Statement] = []
    wanted = {(a.user, a.host) for a in desired}
    for user, host in sorted(k for k in current_hashes if k[0] in set(managed_users)):
        if (user, host) not in wanted:
            out.append(Statement(f"drop account '{user}'@'{host}'", "DROP USER %s@%s",
                                 (user, host)))
    for acc in desired:
        key = (acc.user, acc.host)
        if key not in current_hashes:
            out.append(Statement(f"create account {acc.name}"
                                 + (" (REQUIRE SSL)" if acc.require_ssl else ""),
                                 "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s "
                                 + acc.require_clause,
                                 (acc.user, acc.host, acc.password_hash)))
        else:
            out += _existing_account(acc, current_hashes[key], current_ssl.get(key, ""))
        want = {f"{p} ON {acc.scope}" for p in acc.privileges}
        have = current_privileges.get(key, set())
        if have != want:
            if have:
                out.append(Statement(f"revoke the privileges of {acc.name}",
                                     "REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s",
                                     (acc.user, acc.host)))
            privs = ", ".join(sorted(acc.privileges))
            out.append(Statement(f"grant {privs} ON {acc.scope} to {acc.name}",
                                 f"GRANT {privs} ON {acc.scope} TO %s@%s",
                                 (acc.user, acc.host)))
    return out


def _existing_account(acc: Account, password_hash: str, ssl_type: str) -> list[Statement]:
    """The password and TLS requirement of an account that exists."""
    out = []
    if password_hash != acc.password_hash:
        out.append(Statement(f"set the password of {acc.name}",
                             "ALTER USER %s@%s IDENTIFIED BY PASSWORD %s",
                             (acc.user, acc.host, acc.password_hash)))
    if (ssl_type == "ANY") != acc.require_ssl or ssl_type not in ("", "ANY"):
        what = "require TLS for" if acc.require_ssl else "no longer require TLS for"
        out.append(Statement(f"{what} {acc.name}", f"ALTER USER %s@%s {acc.require_clause}",
                             (acc.user, acc.host)))
    return out


def grants_require_ssl(grants: Iterable[str]) -> bool:
    """SHOW GRANTS lines say REQUIRE SSL (on the account's global line)."""
    return any(line.startswith("GRANT ") and " ON *.* TO " in line and " REQUIRE SSL" in line
               for line in grants)


def privilege_sets(
    user_rows: Iterable[Mapping[str, Any]], schema_rows: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str], set[str]]:
    """information_schema USER_PRIVILEGES and SCHEMA_PRIVILEGES rows to
    (user, host) -> {'<PRIV> ON <scope>'} ('USAGE' ignored)."""
    result: dict[tuple[str, str], set[str]] = {}
    for rows, scope_of in ((user_rows, lambda r: "*.*"),
                           (schema_rows, lambda r: f"{r['TABLE_SCHEMA']}.*")):
        for row in rows:
            if row["PRIVILEGE_TYPE"] == "USAGE":
                continue
            user, _, host = str(row["GRANTEE"]).partition("@")
            key = (user.strip("'"), host.strip("'"))
            result.setdefault(key, set()).add(f"{row['PRIVILEGE_TYPE']} ON {scope_of(row)}")
    return result
