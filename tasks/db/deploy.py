"""The database tier's SQL steps: admin account, schema, accounts, GTID replication.

The db host's files (the MariaDB settings, ``templates/mariadb/60-tp5.cnf.j2``, checked by
``mariadbd --help --verbose`` before MariaDB restarts) and its start are pushed like every
other service by the per-host task (tasks/deploy/host.py); then ``converge_database`` runs
these steps as subtasks, each a Result with ``changed``, a ``# db: <action>`` line per change
in ``diff`` and the actions in ``result``:

1. ``ensure_admin_account``: the controller's admin account. A fresh MariaDB only lets the
   system's root in, through the unix socket, so the first account cannot be made over the
   network: this single step runs the ``mariadb`` client as root over SSH, with the password
   hash (never the password) on its stdin, outside the binary log (each node has its own admin
   account, which must not replicate). Every other step uses pymysql from the controller,
   after the lab-route check. The admin account has no SUPER and no READ_ONLY ADMIN, so the
   replica's read_only applies to it too. On real machines it REQUIRES SSL, like the
   replication account, and every connection is TLS (tasks.db.sql); the lab stays plain;
2. ``converge_role``: ask every db node (tasks.db.survey) and converge toward the ACTUAL
   primary, the one writable node (tasks.db.topology), whatever the inventory's ``db_role``
   (its initial role) says; a live primary is never demoted to match the inventory. Every
   node boots read-only (the settings), so when no node accepts writes this step opens one:
   the inventory's primary on a first deploy (no node replicates yet), or the node the
   replicas follow (a restarted primary) when every other node answered and holds nothing
   it lacks. Otherwise it refuses and names the command to run;
3. on the primary, ``converge_primary``: database, tables, the application's account (one
   per web server address, only that database) and the replication account (one per db
   node address, only REPLICATION SLAVE), each created or fixed only when it differs;
4. on a replica, ``converge_replica``: wait (bounded) for the primary to accept writes and
   hold its account, then ``CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos,
   MASTER_DEMOTE_TO_SLAVE=1`` (heartbeat 1 s; on real machines over TLS, the primary's
   certificate checked against the CA: ``tasks.db.roles.master_ssl_sql``) only when it
   points elsewhere, over another channel (TLS or plain) or its login failed, ``START
   SLAVE`` when a thread is stopped, wait until both threads run and the replica has
   applied the primary's position, then turn the primary's semi-sync side on
   (a first deploy opens the primary before any replica can acknowledge: its own writes
   would otherwise wait forever). A healthy replica is never reset.

Under Nornir's dry-run nothing changes and the same Results say what would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pymysql
from nornir.core.inventory import Host, Inventory
from nornir.core.task import Result, Task

from tasks.core.inventory import tier_hosts
from tasks.core.remote import check_command
from tasks.db.degraded import clear_degraded
from tasks.db.facts import (
    Account,
    Statement,
    account_statements,
    grant_privileges,
    grants_require_ssl,
    gtid_reached,
    parse_slave_status,
    privilege_sets,
    replica_actions,
)
from tasks.db.roles import (
    HEARTBEAT,
    follow_primary,
    heartbeat_period,
    open_writes,
    semi_sync_master,
)
from tasks.db.sql import (
    ADMIN_USER,
    REPL_USER,
    DbError,
    DbTarget,
    connect_admin,
    error_code,
    native_password_hash,
    query,
    scalar,
)
from tasks.db.survey import find_primary
from tasks.deploy.errors import describe_error

# Nothing here bypasses read_only (no SUPER, READ_ONLY ADMIN or ALL): read_only itself is
# changed as the node's root (tasks.db.roles). REPLICATION MASTER ADMIN: semi-sync settings.
ADMIN_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE USER, PROCESS, "
    "RELOAD, REPLICATION SLAVE, REPLICATION SLAVE ADMIN, SLAVE MONITOR, BINLOG MONITOR, "
    "REPLICATION MASTER ADMIN"
)
APP_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
TABLES: dict[str, str] = {
    # Read and written by templates/php/index.php.j2.
    "visits": "CREATE TABLE visits (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
              "served_by VARCHAR(255) NOT NULL, client VARCHAR(64) NOT NULL, "
              "at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
    # PHP sessions shared by every web server (session_store: db, templates/php/index.php.j2):
    # ascii_bin keeps ids case-sensitive; last_access is the server's clock (expiry, GC).
    "sessions": "CREATE TABLE sessions (id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin "
                "NOT NULL PRIMARY KEY, data MEDIUMBLOB NOT NULL, last_access TIMESTAMP NOT NULL "
                "DEFAULT CURRENT_TIMESTAMP, KEY last_access (last_access)) ENGINE=InnoDB",
    # Replication probes (tasks/db/verify.py).
    "markers": "CREATE TABLE markers (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
               "token VARCHAR(64) NOT NULL UNIQUE, source VARCHAR(64) NOT NULL, "
               "written_at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB",
    # One row per failover, the new primary's first transaction (tasks/db/failover.py).
    "failovers": "CREATE TABLE failovers (epoch INT PRIMARY KEY, new_primary VARCHAR(64) "
                 "NOT NULL, old_primary VARCHAR(64) NOT NULL, position VARCHAR(255) NOT NULL, "
                 "at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB",
    # The lag benchmark's rows, each with its commit time (benchmarks/replication_lag.py).
    "lag_bench": "CREATE TABLE lag_bench (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                 "run VARCHAR(32) NOT NULL, seq INT NOT NULL, "
                 "committed_at DATETIME(6) NOT NULL, KEY run_seq (run, seq)) ENGINE=InnoDB",
}
START_WAIT = 30.0
PRIMARY_WAIT = 45.0
CATCH_UP_WAIT = 60.0


# --- what the nodes must hold (pure) ------------------------------------------------------

def database_name(host: Host) -> str:
    return str(host["app_name"])


def primary_of(inventory: Inventory) -> Host:
    """The db tier's primary (the inventory check guarantees exactly one)."""
    primaries = [h for h in tier_hosts(inventory, "db") if h["db_role"] == "primary"]
    if len(primaries) != 1:
        raise DbError(f"the db tier needs exactly one primary, found {len(primaries)}")
    return primaries[0]


def replicas_of(inventory: Inventory) -> list[Host]:
    return [h for h in tier_hosts(inventory, "db") if h["db_role"] == "replica"]


def desired_accounts(primary: Host, inventory: Inventory, target: DbTarget) -> list[Account]:
    """The app account per web server address and the replication account per db node
    (every node may come to replicate from any other after a switchover or failover)."""
    secrets = target.secrets
    app = database_name(primary)
    app_hash = native_password_hash(secrets.app)
    repl_hash = native_password_hash(secrets.replication)
    accounts = [Account(app, web.hostname, app_hash, APP_PRIVILEGES, f"{app}.*")
                for web in tier_hosts(inventory, "web")]
    accounts += [Account(REPL_USER, rep.hostname, repl_hash,
                         frozenset({"REPLICATION SLAVE"}), "*.*", require_ssl=target.tls)
                 for rep in tier_hosts(inventory, "db")]
    return accounts


def admin_bootstrap_sql(admin_from: str, password_hash: str, require_ssl: bool) -> str:
    """SQL run as root over the unix socket: the controller's account, not binlogged
    (`require_ssl`: real machines, REQUIRE SSL; the lab: REQUIRE NONE)."""
    who = f"'{ADMIN_USER}'@'{admin_from}'"
    require = "REQUIRE SSL" if require_ssl else "REQUIRE NONE"
    return (
        "SET SESSION sql_log_bin = 0;\n"
        f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY PASSWORD '{password_hash}' "
        f"{require};\n"
        f"ALTER USER {who} IDENTIFIED BY PASSWORD '{password_hash}' {require};\n"
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {who};\n"
        f"GRANT {ADMIN_PRIVILEGES} ON *.* TO {who} WITH GRANT OPTION;\n"
    )


# --- the steps (Nornir tasks) -------------------------------------------------------------

def _report(task: Task, actions: list[str], **extra: Any) -> Result:
    return Result(host=task.host, changed=bool(actions),
                  diff="".join(f"# db: {a}\n" for a in actions), result=actions, **extra)


def _admin_connect(target: DbTarget, host: Host,
                   deadline: float) -> tuple[pymysql.connections.Connection | None, int | None]:
    """The admin connection, or the error code when the server refuses the account (1045,
    1130). Other errors (MariaDB still starting) are retried until `deadline`."""
    while True:
        try:
            return connect_admin(target, host), None
        except DbError as exc:
            code = error_code(exc.__cause__) if exc.__cause__ else None
            if code in (1045, 1130):
                return None, code
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _admin_grants_current(conn: pymysql.connections.Connection, require_ssl: bool) -> bool:
    """The admin account holds every privilege of ADMIN_PRIVILEGES (older deploys lacked
    some) and requires TLS exactly when `require_ssl`."""
    grants = [str(next(iter(r.values()))) for r in query(conn, "SHOW GRANTS")]
    want = {p.strip() for p in ADMIN_PRIVILEGES.split(",")}
    return (want <= grant_privileges(grants).get("*.*", set())
            and grants_require_ssl(grants) == require_ssl)


def ensure_admin_account(task: Task, target: DbTarget, running: bool = True) -> Result:
    """Nornir task: the controller's admin account exists (made over SSH when missing).

    `running`: MariaDB runs (as read before). ``Result.connection``: the admin connection
    for the next steps (the caller closes it), None when they cannot run: under dry-run,
    MariaDB is not running yet or the account is missing. While the account is being made,
    the run opens no admin session to the node (``DbTarget.making_account``): one that
    logged in between its CREATE USER and its GRANT would lack the privileges for good.
    """
    host = task.host
    if task.is_dry_run() and not running:
        return _report(task, ["set up the admin account, schema, accounts and replication "
                              "once mariadb runs"], connection=None)
    deadline = time.monotonic() + START_WAIT
    conn, _ = _admin_connect(target, host, deadline)
    origin = target.admin_from(str(host.hostname))
    who = f"{ADMIN_USER}@{origin}"
    if conn is not None:
        if _admin_grants_current(conn, target.tls):
            return _report(task, [], connection=target.account_ready(host, conn))
        if task.is_dry_run():
            return _report(task, [], connection=conn)
        conn.close()
        _make_admin_account(task, target, origin)
        return _report(task, [f"set the privileges and TLS requirement of the admin account "
                              f"{who}"], connection=_admin_connect(target, host, deadline)[0])
    if task.is_dry_run():
        return _report(task, [f"create the admin account {who} (over SSH), then accounts, "
                              "schema and replication"], connection=None)
    _make_admin_account(task, target, origin)
    conn, code = _admin_connect(target, host, deadline)
    if conn is None:
        raise DbError(f"{host.name}: the admin account {who} was created over SSH but "
                      f"MariaDB still refuses it (error {code})")
    return _report(task, [f"create the admin account {who}"], connection=conn)


def _make_admin_account(task: Task, target: DbTarget, origin: str) -> None:
    """Create or fix the admin account as root over SSH (``admin_bootstrap_sql``), with no
    admin session of this run opened to the node meanwhile."""
    sql = admin_bootstrap_sql(origin, native_password_hash(target.secrets.admin), target.tls)
    with target.making_account(task.host):
        check_command(task, "mariadb --batch", stdin=sql)


def converge_role(task: Task, target: DbTarget, inventory: Inventory,
                  conn: pymysql.connections.Connection) -> Result:
    """Nornir task: find the actual primary (tasks.db.topology); open this node for writes
    only when it is the one to open and no node accepts writes (a first deploy, or a
    restarted primary holding everything its replicas hold). Never demotes a live primary.

    ``Result.primary``: the primary's name; ``Result.notes``: where the inventory disagrees.
    """
    host = task.host
    decision, probes = find_primary(target, inventory)
    if decision.refusal or decision.primary is None:
        raise DbError(f"{host.name}: {decision.refusal}")
    actions: list[str] = []
    if decision.primary == host.name and decision.open_primary:
        if decision.open_refusal:
            raise DbError(f"{host.name}: {decision.open_refusal}")
        followers = [p.name for p in probes if p.name != host.name
                     and p.source == host.hostname]
        why = (f"its replicas {', '.join(followers)} hold nothing it lacks" if followers
               else "first deploy: no node replicates yet")
        actions.append(f"open {host.name} for writes (no node accepted writes; {why})")
        if not task.is_dry_run():
            task.run(task=open_writes, semi_sync=bool(followers))
    return _report(task, actions, primary=decision.primary, notes=decision.notes)


def converge_primary(task: Task, target: DbTarget, inventory: Inventory,
                     conn: pymysql.connections.Connection) -> Result:
    """Nornir task: database, tables and accounts on the primary, each only when needed
    (`conn`: the admin connection to the host)."""
    actions: list[str] = []
    _setup_primary(conn, task.host, inventory, target, task.is_dry_run(), actions)
    return _report(task, actions)


def converge_replica(task: Task, target: DbTarget, primary: Host,
                     conn: pymysql.connections.Connection) -> Result:
    """Nornir task: the replica follows `primary` (the actual one) and has caught up with
    it; then the primary's semi-sync side is on (`conn`: the admin connection to the host).
    ``Result.waited``: seconds spent waiting for the primary.
    """
    actions: list[str] = []
    waited = _setup_replica(task, conn, primary, target, actions)
    return _report(task, actions, waited=waited)


def converge_database(task: Task, target: DbTarget, inventory: Inventory,
                      running: bool = True) -> list[Result]:
    """Run the db host's SQL steps as subtasks of `task`; return their Results.

    `inventory`: the whole inventory (the db nodes, the web servers); `running`: MariaDB
    runs (as read before the deploy). The host converges toward the actual primary
    (``converge_role``), not the inventory's.
    """
    admin = task.run(task=ensure_admin_account, target=target, running=running)[0]
    conn = admin.connection
    if conn is None:
        return [admin]
    try:
        role = task.run(task=converge_role, target=target, inventory=inventory, conn=conn)[0]
        if role.primary == task.host.name:
            step = task.run(task=converge_primary, target=target, inventory=inventory,
                            conn=conn)[0]
        else:
            step = task.run(task=converge_replica, target=target,
                            primary=inventory.hosts[role.primary], conn=conn)[0]
        return [admin, role, step]
    finally:
        conn.close()


def _run(conn: pymysql.connections.Connection, stmt: Statement, dry: bool,
         actions: list[str], host: Host) -> None:
    actions.append(stmt.describe)
    if dry:
        return
    try:
        query(conn, stmt.sql, stmt.args or None)
    except pymysql.MySQLError as exc:
        raise DbError(f"{host.name}: {stmt.describe}: {describe_error(exc)}") from exc


def _setup_primary(conn: pymysql.connections.Connection, host: Host, inventory: Inventory,
                   target: DbTarget, dry: bool, actions: list[str]) -> None:
    """Database, tables and accounts on the primary, each only when missing or different."""
    db = database_name(host)
    if not query(conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                 (db,)):
        _run(conn, Statement(f"create database {db}",
                             f"CREATE DATABASE {db} CHARACTER SET utf8mb4"), dry, actions, host)
    present = {r["TABLE_NAME"] for r in query(
        conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))}
    for table, ddl in TABLES.items():
        if table not in present:
            _run(conn, Statement(f"create table {db}.{table}",
                                 ddl.replace("CREATE TABLE ", f"CREATE TABLE {db}.", 1)),
                 dry, actions, host)
    desired = desired_accounts(host, inventory, target)
    managed = sorted({a.user for a in desired} | {db, REPL_USER})
    marks = ", ".join(["%s"] * len(managed))
    users = query(conn, "SELECT User, Host, authentication_string, ssl_type FROM mysql.user "
                        f"WHERE User IN ({marks})", tuple(managed))
    hashes = {(r["User"], r["Host"]): r["authentication_string"] for r in users}
    ssl_types = {(r["User"], r["Host"]): str(r["ssl_type"] or "") for r in users}
    privileges = privilege_sets(
        query(conn, "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES"),
        query(conn, "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE "
                    "FROM information_schema.SCHEMA_PRIVILEGES"),
    )
    for stmt in account_statements(desired, hashes, privileges, managed, ssl_types):
        _run(conn, stmt, dry, actions, host)


def _replica_todo(conn: pymysql.connections.Connection, primary: Host, tls: bool) -> list[str]:
    """'change_master' and/or 'start' (tasks.db.facts.replica_actions), and a change when
    the heartbeat is not the settings' (replicas made before it was set)."""
    status = parse_slave_status(query(conn, "SHOW SLAVE STATUS"))
    todo = replica_actions(status, primary.hostname, int(primary["db_port"]), REPL_USER, tls)
    if status is not None and "change_master" not in todo \
            and heartbeat_period(conn) != HEARTBEAT:
        todo = ["change_master", "start"]
    return todo


def _setup_replica(task: Task, conn: pymysql.connections.Connection, primary: Host,
                   target: DbTarget, actions: list[str]) -> float:
    """Point the replica at the primary (only if needed), start it, wait until caught up,
    then turn the primary's semi-sync side on; return the seconds spent waiting for the
    primary."""
    host, dry = task.host, task.is_dry_run()
    started = time.monotonic()
    todo = _replica_todo(conn, primary, target.tls)
    if dry:
        actions.extend(_describe_replica_action(a, primary, target.tls) for a in todo)
        return 0.0
    primary_conn = _wait_primary_ready(host, primary, target)
    waited = time.monotonic() - started
    try:
        if "change_master" in todo:
            actions.append(_describe_replica_action("change_master", primary, target.tls))
            task.run(task=follow_primary, address=primary.hostname,
                     port=int(primary["db_port"]), password=target.secrets.replication,
                     tls=target.tls)
        if "start" in todo:
            _run(conn, Statement(_describe_replica_action("start", primary, target.tls),
                                 "START SLAVE"),
                 dry, actions, host)
        wait_caught_up(conn, primary_conn, host, primary, CATCH_UP_WAIT)
        _ensure_semi_sync(conn, primary_conn, host, primary, actions)
    finally:
        primary_conn.close()
    return waited


def _step(actions: list[str], host: Host, describe: str, action: Callable[[], None]) -> None:
    actions.append(describe)
    try:
        action()
    except pymysql.MySQLError as exc:
        raise DbError(f"{host.name}: {describe}: {describe_error(exc)}") from exc


def _ensure_semi_sync(conn: pymysql.connections.Connection,
                      primary_conn: pymysql.connections.Connection, host: Host, primary: Host,
                      actions: list[str]) -> None:
    """The caught-up replica acknowledges: turn the primary's semi-sync side on (a first
    deploy opens the primary before any replica could acknowledge)."""
    acks = query(conn, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'")
    if not acks or acks[0]["Value"] != "ON":
        raise DbError(f"{host.name}: replicates from {primary.name} but does not acknowledge "
                      "(Rpl_semi_sync_slave_status OFF)")
    if not scalar(primary_conn, "SELECT @@GLOBAL.rpl_semi_sync_master_enabled"):
        _step(actions, host, f"turn semi-sync on at {primary.name} ({host.name} acknowledges)",
              lambda: semi_sync_master(primary_conn, True))
    clear_degraded()  # a replica has caught up and semi-sync is on


def _describe_replica_action(action: str, primary: Host, tls: bool) -> str:
    if action == "change_master":
        return (f"replicate from {primary.name} ({primary.hostname}) as {REPL_USER}, "
                "GTID slave_pos, heartbeat 1 s" + (", TLS verified" if tls else ""))
    return "start replication"


def _wait_primary_ready(host: Host, primary: Host,
                        target: DbTarget) -> pymysql.connections.Connection:
    """Admin connection to the primary once it accepts writes and holds this replica's
    replication account."""
    deadline = time.monotonic() + PRIMARY_WAIT
    last = ""
    while time.monotonic() < deadline:
        try:
            conn = connect_admin(target, primary)
        except DbError as exc:
            last = str(exc)
        else:
            ready = (not scalar(conn, "SELECT @@GLOBAL.read_only")
                     and query(conn, "SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s",
                               (REPL_USER, host.hostname)))
            if ready:
                return conn
            conn.close()
            last = (f"{primary.name} is read-only or has no account {REPL_USER}@"
                    f"{host.hostname} yet")
        time.sleep(0.5)
    raise DbError(f"{host.name}: the primary {primary.name} was not ready within "
                  f"{PRIMARY_WAIT:.0f} s (deploy it first): {last}")


def wait_caught_up(conn: pymysql.connections.Connection,
                   primary_conn: pymysql.connections.Connection, host: Host, primary: Host,
                   timeout: float) -> dict[str, Any]:
    """Wait until both threads run, no error, and the primary's GTID position is applied.

    Raises DbError naming the host and the thread's last error. Returns the final
    {'gtid_slave_pos', 'primary_pos', 'seconds'}.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        status = parse_slave_status(query(conn, "SHOW SLAVE STATUS"))
        if status is None:
            raise DbError(f"{host.name}: replication is not configured")
        stopped = status.io_running == "No" or status.sql_running == "No"
        if status.last_error and (stopped or status.io_errno == 1593):
            raise DbError(f"{host.name}: replication from {primary.name} failed: "
                          f"{status.last_error}")
        if status.running:
            wanted = str(scalar(primary_conn, "SELECT @@GLOBAL.gtid_binlog_pos") or "")
            # Short waits: the connection's read timeout must outlast each one.
            remaining = min(5.0, max(0.0, deadline - time.monotonic()))
            if scalar(conn, "SELECT MASTER_GTID_WAIT(%s, %s)", (wanted, remaining)) == 0:
                have = str(scalar(conn, "SELECT @@GLOBAL.gtid_slave_pos") or "")
                if gtid_reached(have, wanted):
                    return {"gtid_slave_pos": have, "primary_pos": wanted,
                            "seconds": time.monotonic() - started}
        if time.monotonic() > deadline:
            error = f", {status.last_error}" if status.last_error else ""
            raise DbError(f"{host.name}: replication did not catch up with {primary.name} "
                          f"within {timeout:.0f} s (IO {status.io_running}, "
                          f"SQL {status.sql_running}{error})")
        time.sleep(0.2)
