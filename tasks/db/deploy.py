"""Deploy the database tier: MariaDB settings, schema, accounts, GTID replication.

``deploy_db`` (a Nornir task, for each db host, all in one parallel run):
1. render ``templates/mariadb/60-tp5.cnf.j2`` and push it with ``push_files``; the candidate is
   checked by ``mariadbd --help --verbose`` (which parses every option file the way the daemon
   will: an unknown option or a bad number fails it) and the values mariadbd would really use
   are compared with the intended ones (mariadbd only warns about a bad boolean, e.g.
   ``read_only = maybe`` becomes OFF). MariaDB restarts only when the settings changed;
2. start MariaDB if it is not running (fresh or crashed node);
3. make sure the controller's admin account exists. A fresh MariaDB only lets the system's
   root in, through the unix socket, so the first account cannot be made over the network:
   this single step runs the ``mariadb`` client as root over SSH, with the password hash (never
   the password) on its stdin, outside the binary log (each node has its own admin account,
   which must not replicate). Every other step uses pymysql from the controller, after the
   lab-route check. The admin account has no SUPER and no READ_ONLY ADMIN, so the replica's
   read_only applies to it too;
4. primary: database, tables, the application's account (one per web server address, only
   that database) and the replication account (one per replica address, only REPLICATION
   SLAVE), each created or fixed only when it differs;
5. replica: wait (bounded) for the primary to be ready, then ``CHANGE MASTER TO ...
   MASTER_USE_GTID=slave_pos`` only when it points elsewhere (or its login failed), ``START
   SLAVE`` when a thread is stopped, and wait until both threads run and the replica has
   applied the primary's current GTID position. A healthy replica is never reset.

Result: ``changed`` (a file or anything in the database changed), ``diff`` (the settings' diff
plus one ``# db: <action>`` line per database change), ``result`` = {"actions", "timings"}.
Under dry-run nothing changes and the same report says what would.
"""

from __future__ import annotations

import shlex
import time
from functools import cache
from typing import Any

import pymysql
from nornir.core.inventory import Host, Inventory
from nornir.core.task import Result, Task

from tasks.core.inventory import tier_hosts
from tasks.core.remote import check_command, run_command
from tasks.core.secrets import db_secrets
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
    describe_error,
    error_code,
    native_password_hash,
    query,
    scalar,
)
from tasks.deploy.push import DesiredFile, push_files
from tasks.deploy.render import host_context, render_template

SETTINGS_PATH = "/etc/mysql/mariadb.conf.d/60-tp5.cnf"
SETTINGS_TEMPLATE = "mariadb/60-tp5.cnf.j2"
RESTART = "service mariadb restart"
ENSURE_RUNNING = ("if pidof mariadbd >/dev/null; then echo running; "
                  "else service mariadb start 1>&2 && echo started; fi")
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
    # Replication probes (tasks/db_verify.py).
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


def mariadb_settings(host: Host, inventory: Inventory) -> DesiredFile:
    """The server settings file of a db host."""
    content = render_template(SETTINGS_TEMPLATE, **host_context(host, inventory))
    return DesiredFile(path=SETTINGS_PATH, content=content, mode="0644", owner="root:root")


def expected_variables(host: Host) -> dict[str, str]:
    """Values `mariadbd --help --verbose` must show once the settings are read."""
    return {
        "server-id": str(host["db_server_id"]),
        "bind-address": str(host.hostname),
        "port": str(host["db_port"]),
        "read-only": "TRUE" if host["db_role"] == "replica" else "FALSE",
        "log-bin": "tp5-bin",
        "gtid-strict-mode": "TRUE",
        "log-slave-updates": "TRUE",
        "skip-name-resolve": "TRUE",
    }


def settings_check_command(expected: dict[str, str]) -> str:
    """Shell check: mariadbd parses the option files cleanly and reads the expected values."""
    wants = " ".join(shlex.quote(f"{k}={v}") for k, v in expected.items())
    return (
        "vars=$(mktemp) && err=$(mariadbd --help --verbose 2>&1 >\"$vars\"); rc=$?; "
        "bad=$(printf '%s\\n' \"$err\" | grep -E \"\\[ERROR\\]|wasn't recognized|"
        "Unknown suffix\"); "
        "if [ $rc -ne 0 ] || [ -n \"$bad\" ]; then rm -f \"$vars\"; "
        "echo \"mariadbd rejects the settings: ${bad:-exit $rc}\"; exit 1; fi; "
        f"for want in {wants}; do k=${{want%%=*}}; v=${{want#*=}}; "
        "got=$(awk -v k=\"$k\" '$1 == k {print $2}' \"$vars\"); "
        "if [ \"$got\" != \"$v\" ]; then rm -f \"$vars\"; "
        "echo \"mariadbd would run with $k = ${got:-?}, the settings want $v\"; exit 1; fi; "
        "done; rm -f \"$vars\""
    )


def desired_accounts(primary: Host, inventory: Inventory, target: DbTarget) -> list[Account]:
    """The app account per web server address and the replication account per replica."""
    secrets = target.secrets()
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


def php_string(value: str) -> str:
    """A PHP single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def app_db_settings(host: Host, inventory: Inventory, target: str | None = None) -> DesiredFile:
    """/etc/<app>/db.php for a web host: $db_host (primary), $db_port, $db_name, $db_user,
    $db_pass, $db_replica_host (first replica, for the page's replica read).

    target: 'lab' or 'real' (default: the repository's config.yaml); mode 0640 root:www-data.
    """
    from tasks.core.settings import load_settings

    primary = primary_of(inventory)
    replicas = replicas_of(inventory)
    app = database_name(primary)
    password = db_secrets(target or load_settings().target).app
    lines = [
        "<?php",
        "// Managed by tp5ha (tasks/db_deploy.py app_db_settings): changes are overwritten.",
        f"$db_host = {php_string(primary.hostname)};",
        f"$db_port = {int(primary['db_port'])};",
        f"$db_name = {php_string(app)};",
        f"$db_user = {php_string(app)};",
        f"$db_pass = {php_string(password)};",
    ]
    if replicas:
        lines.append(f"$db_replica_host = {php_string(replicas[0].hostname)};")
    return DesiredFile(path=f"/etc/{app}/db.php", content="\n".join(lines) + "\n", secret=True,
                       mode="0640", owner="root:www-data")


# --- the task -----------------------------------------------------------------------------

@cache
def _load_inventory(host_file: str, group_file: str, defaults_file: str) -> Inventory:
    from nornir.plugins.inventory.simple import SimpleInventory as Simple

    return Simple(host_file=host_file, group_file=group_file, defaults_file=defaults_file).load()


def full_inventory(task: Task) -> Inventory:
    """The whole inventory (the run's may be filtered to the db group or one host)."""
    options = task.nornir.config.inventory.options
    return _load_inventory(str(options["host_file"]), str(options["group_file"]),
                           str(options["defaults_file"]))


def deploy_db(task: Task, dry_run: bool | None = None) -> Result:
    """Deploy one db host (primary or replica); see the module docstring for the steps."""
    dry = task.is_dry_run(dry_run)
    target = DbTarget.from_user_defined(task.nornir.config.user_defined)
    inventory = full_inventory(task)
    host = task.host
    timings: dict[str, float] = {}
    actions: list[str] = []

    def report() -> Result:
        diff = pushed.diff + "".join(f"# db: {a}\n" for a in actions)
        return Result(host=host, changed=bool(pushed.changed or actions), diff=diff,
                      result={"actions": actions, "timings": timings})

    started = time.monotonic()
    pushed = push_files(task, [mariadb_settings(host, inventory)],
                        validate=settings_check_command(expected_variables(host)),
                        reload=RESTART, dry_run=dry)
    if pushed.changed:
        actions.append("restart mariadb with the new settings")
    timings["settings"] = time.monotonic() - started

    started = time.monotonic()
    if dry:
        if not run_command(task, "pidof mariadbd").ok:
            actions.append("start mariadb, then set up accounts, schema and replication")
            return report()
    elif check_command(task, ENSURE_RUNNING, timeout=90).stdout.strip() == "started":
        actions.append("start mariadb")
    timings["service"] = time.monotonic() - started

    started = time.monotonic()
    conn = _admin_connection(task, target, dry, actions)
    timings["admin"] = time.monotonic() - started
    if conn is None:
        return report()
    try:
        started = time.monotonic()
        if host["db_role"] == "primary":
            _setup_primary(conn, host, inventory, target, dry, actions)
            timings["sql"] = time.monotonic() - started
        else:
            _setup_replica(conn, host, inventory, target, dry, actions, timings)
    finally:
        conn.close()
    return report()


def _admin_connection(task: Task, target: DbTarget, dry: bool,
                      actions: list[str]) -> pymysql.connections.Connection | None:
    """Connect as admin, bootstrapping the account over SSH when it is missing."""
    deadline = time.monotonic() + START_WAIT
    bootstrapped = False
    while True:
        try:
            return connect_admin(target, task.host)
        except DbError as exc:
            code = error_code(exc.__cause__) if exc.__cause__ else None
            if code in (1045, 1130) and not bootstrapped:
                if dry:
                    actions.append(f"create the admin account {ADMIN_USER} (over SSH), "
                                   "then accounts, schema and replication")
                    return None
                sql = admin_bootstrap_sql(target.admin_from(),
                                          native_password_hash(target.secrets().admin))
                check_command(task, "mariadb --batch", stdin=sql)
                actions.append(f"create the admin account {ADMIN_USER}@{target.admin_from()}")
                bootstrapped = True
                continue
            if code in (1045, 1130) or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


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
                   target: DbTarget, dry: bool, actions: list[str],
                   timings: dict[str, float]) -> None:
    """Point the replica at the primary (only if needed), start it, wait until caught up."""
    started = time.monotonic()
    primary = replica_source(host, inventory)
    port = int(primary["db_port"])
    status = parse_slave_status(query(conn, "SHOW SLAVE STATUS"))
    todo = replica_actions(status, primary.hostname, port, REPL_USER)
    if dry:
        actions.extend(_describe_replica_action(a, primary) for a in todo)
        return
    primary_conn = _wait_primary_ready(host, primary, target)
    timings["primary_wait"] = time.monotonic() - started
    try:
        started = time.monotonic()
        if "change_master" in todo:
            _run(conn, Statement("stop replication", "STOP SLAVE"), dry, [], host)
            _run(conn, Statement(
                _describe_replica_action("change_master", primary),
                "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
                "MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
                (primary.hostname, port, REPL_USER, target.secrets().replication),
            ), dry, actions, host)
        if "start" in todo:
            _run(conn, Statement(_describe_replica_action("start", primary), "START SLAVE"),
                 dry, actions, host)
        timings["replication"] = time.monotonic() - started
        started = time.monotonic()
        wait_caught_up(conn, primary_conn, host, primary, CATCH_UP_WAIT)
        timings["catch_up"] = time.monotonic() - started
    finally:
        primary_conn.close()


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
