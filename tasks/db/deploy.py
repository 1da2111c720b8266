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
   replica's read_only applies to it too;
2. ``converge_primary``: database, tables, the application's account (one per web server
   address, only that database) and the replication account (one per replica address, only
   REPLICATION SLAVE), each created or fixed only when it differs;
3. ``converge_replica``: wait (bounded) for the primary to be ready, then ``CHANGE MASTER TO
   ... MASTER_USE_GTID=slave_pos`` only when it points elsewhere (or its login failed),
   ``START SLAVE`` when a thread is stopped, and wait until both threads run and the replica
   has applied the primary's current GTID position. A healthy replica is never reset.

Under Nornir's dry-run nothing changes and the same Results say what would.
"""

from __future__ import annotations

import time
from typing import Any

import pymysql
from nornir.core.inventory import Host, Inventory
from nornir.core.task import Result, Task

from tasks.core.inventory import tier_hosts
from tasks.core.remote import check_command
from tasks.db.facts import (
    Account,
    Statement,
    account_statements,
    gtid_reached,
    parse_slave_status,
    privilege_sets,
    replica_actions,
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
from tasks.deploy.errors import describe_error

ADMIN_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE USER, PROCESS, "
    "RELOAD, REPLICATION SLAVE, REPLICATION SLAVE ADMIN, SLAVE MONITOR, BINLOG MONITOR"
)
APP_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
TABLES: dict[str, str] = {
    # Read and written by templates/php/index.php.j2.
    "visits": "CREATE TABLE visits (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
              "served_by VARCHAR(255) NOT NULL, client VARCHAR(64) NOT NULL, "
              "at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
    # Replication probes (tasks/db/verify.py).
    "markers": "CREATE TABLE markers (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
               "token VARCHAR(64) NOT NULL UNIQUE, source VARCHAR(64) NOT NULL, "
               "written_at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB",
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
    """The app account per web server address and the replication account per replica."""
    secrets = target.secrets
    app = database_name(primary)
    app_hash = native_password_hash(secrets.app)
    repl_hash = native_password_hash(secrets.replication)
    accounts = [Account(app, web.hostname, app_hash, APP_PRIVILEGES, f"{app}.*")
                for web in tier_hosts(inventory, "web")]
    accounts += [Account(REPL_USER, rep.hostname, repl_hash,
                         frozenset({"REPLICATION SLAVE"}), "*.*")
                 for rep in replicas_of(inventory)]
    return accounts


def admin_bootstrap_sql(admin_from: str, password_hash: str) -> str:
    """SQL run as root over the unix socket: the controller's account, not binlogged."""
    who = f"'{ADMIN_USER}'@'{admin_from}'"
    return (
        "SET SESSION sql_log_bin = 0;\n"
        f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY PASSWORD '{password_hash}';\n"
        f"ALTER USER {who} IDENTIFIED BY PASSWORD '{password_hash}';\n"
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


def ensure_admin_account(task: Task, target: DbTarget, running: bool = True) -> Result:
    """Nornir task: the controller's admin account exists (made over SSH when missing).

    `running`: MariaDB runs (as read before). ``Result.connection``: the admin connection
    for the next steps (the caller closes it), None when they cannot run: under dry-run,
    MariaDB is not running yet or the account is missing.
    """
    host = task.host
    if task.is_dry_run() and not running:
        return _report(task, ["set up the admin account, schema, accounts and replication "
                              "once mariadb runs"], connection=None)
    deadline = time.monotonic() + START_WAIT
    conn, _ = _admin_connect(target, host, deadline)
    if conn is not None:
        return _report(task, [], connection=conn)
    who = f"{ADMIN_USER}@{target.admin_from()}"
    if task.is_dry_run():
        return _report(task, [f"create the admin account {who} (over SSH), then accounts, "
                              "schema and replication"], connection=None)
    sql = admin_bootstrap_sql(target.admin_from(), native_password_hash(target.secrets.admin))
    check_command(task, "mariadb --batch", stdin=sql)
    conn, code = _admin_connect(target, host, deadline)
    if conn is None:
        raise DbError(f"{host.name}: the admin account {who} was created over SSH but "
                      f"MariaDB still refuses it (error {code})")
    return _report(task, [f"create the admin account {who}"], connection=conn)


def converge_primary(task: Task, target: DbTarget, inventory: Inventory,
                     conn: pymysql.connections.Connection) -> Result:
    """Nornir task: database, tables and accounts on the primary, each only when needed
    (`conn`: the admin connection to the host)."""
    actions: list[str] = []
    _setup_primary(conn, task.host, inventory, target, task.is_dry_run(), actions)
    return _report(task, actions)


def converge_replica(task: Task, target: DbTarget, inventory: Inventory,
                     conn: pymysql.connections.Connection) -> Result:
    """Nornir task: the replica follows the primary and has caught up with it (`conn`: the
    admin connection to the host). ``Result.waited``: seconds spent waiting for the primary.
    """
    actions: list[str] = []
    waited = _setup_replica(conn, task.host, inventory, target, task.is_dry_run(), actions)
    return _report(task, actions, waited=waited)


def converge_database(task: Task, target: DbTarget, inventory: Inventory,
                      running: bool = True) -> list[Result]:
    """Run the db host's SQL steps as subtasks of `task`; return their Results.

    `inventory`: the whole inventory (the primary, the web servers and the replicas);
    `running`: MariaDB runs (as read before the deploy).
    """
    admin = task.run(task=ensure_admin_account, target=target, running=running)[0]
    conn = admin.connection
    if conn is None:
        return [admin]
    step = converge_primary if task.host["db_role"] == "primary" else converge_replica
    try:
        return [admin, task.run(task=step, target=target, inventory=inventory, conn=conn)[0]]
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
    hashes = {(r["User"], r["Host"]): r["authentication_string"] for r in query(
        conn, f"SELECT User, Host, authentication_string FROM mysql.user WHERE User IN ({marks})",
        tuple(managed))}
    privileges = privilege_sets(
        query(conn, "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES"),
        query(conn, "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE "
                    "FROM information_schema.SCHEMA_PRIVILEGES"),
    )
    for stmt in account_statements(desired, hashes, privileges, managed):
        _run(conn, stmt, dry, actions, host)


def replica_source(host: Host, inventory: Inventory) -> Host:
    """The primary a replica follows."""
    primary = primary_of(inventory)
    if primary.name == host.name:
        raise DbError(f"{host.name}: is the primary, not a replica")
    return primary


def _setup_replica(conn: pymysql.connections.Connection, host: Host, inventory: Inventory,
                   target: DbTarget, dry: bool, actions: list[str]) -> float:
    """Point the replica at the primary (only if needed), start it, wait until caught up;
    return the seconds spent waiting for the primary."""
    started = time.monotonic()
    primary = replica_source(host, inventory)
    port = int(primary["db_port"])
    status = parse_slave_status(query(conn, "SHOW SLAVE STATUS"))
    todo = replica_actions(status, primary.hostname, port, REPL_USER)
    if dry:
        actions.extend(_describe_replica_action(a, primary) for a in todo)
        return 0.0
    primary_conn = _wait_primary_ready(host, primary, target)
    waited = time.monotonic() - started
    try:
        if "change_master" in todo:
            _run(conn, Statement("stop replication", "STOP SLAVE"), dry, [], host)
            _run(conn, Statement(
                _describe_replica_action("change_master", primary),
                "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
                "MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
                (primary.hostname, port, REPL_USER, target.secrets.replication),
            ), dry, actions, host)
        if "start" in todo:
            _run(conn, Statement(_describe_replica_action("start", primary), "START SLAVE"),
                 dry, actions, host)
        wait_caught_up(conn, primary_conn, host, primary, CATCH_UP_WAIT)
    finally:
        primary_conn.close()
    return waited


def _describe_replica_action(action: str, primary: Host) -> str:
    if action == "change_master":
        return (f"replicate from {primary.name} ({primary.hostname}) as {REPL_USER}, "
                "GTID slave_pos")
    return "start replication"


def _wait_primary_ready(host: Host, primary: Host,
                        target: DbTarget) -> pymysql.connections.Connection:
    """Admin connection to the primary once it holds this replica's replication account."""
    deadline = time.monotonic() + PRIMARY_WAIT
    last = ""
    while time.monotonic() < deadline:
        try:
            conn = connect_admin(target, primary)
        except DbError as exc:
            last = str(exc)
        else:
            if query(conn, "SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s",
                     (REPL_USER, host.hostname)):
                return conn
            conn.close()
            last = f"{primary.name} has no account {REPL_USER}@{host.hostname} yet"
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
