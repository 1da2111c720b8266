"""Pure parts of the database tier: parsers of captured rows, plans, rendering, secrets."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from tasks.core.nornir_build import build_nornir
from tasks.core.secrets import ENV_VARS, DbSecrets, env_secrets, lab_secrets
from tasks.core.settings import ProjectError, load_settings
from tasks.db.deploy import primary_of
from tasks.db.facts import (
    Account,
    account_statements,
    forbidden_admin_privileges,
    gtid_reached,
    parse_gtid_pos,
    parse_slave_status,
    privilege_sets,
    replica_actions,
)
from tasks.db.sql import DbError, DbTarget, native_password_hash
from tasks.db.status import DURABILITY, SemiSync
from tasks.db.verify import NodeStatus, cluster_status
from tasks.deploy.errors import describe_error
from tasks.deploy.files import MARIADB_SETTINGS, db_files, expected_variables, mariadb_check
from tasks.deploy.render import host_context, php_string, render_template

# Captured with pymysql (DictCursor) from the lab's db2 (MariaDB 10.11), reduced to the
# fields the parser reads plus a few neighbours.
HEALTHY_ROW = {
    "Slave_IO_State": "Waiting for master to send event", "Master_Host": "10.5.1.211",
    "Master_User": "repl", "Master_Port": 3306, "Connect_Retry": 1,
    "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Last_Errno": 0, "Last_Error": "",
    "Seconds_Behind_Master": 0, "Last_IO_Errno": 0, "Last_IO_Error": "", "Last_SQL_Errno": 0,
    "Last_SQL_Error": "", "Master_Server_Id": 1, "Using_Gtid": "Slave_Pos",
    "Gtid_IO_Pos": "0-1-3841",
    "Slave_SQL_Running_State": "Slave has read all relay log; waiting for more updates",
}
STOPPED_ROW = {**HEALTHY_ROW, "Slave_IO_State": "", "Slave_IO_Running": "No",
               "Slave_SQL_Running": "No", "Seconds_Behind_Master": None}
SAME_ID_ROW = {
    **HEALTHY_ROW, "Slave_IO_State": "", "Slave_IO_Running": "No",
    "Seconds_Behind_Master": None, "Last_IO_Errno": 1593,
    "Last_IO_Error": "Fatal error: The slave I/O thread stops because master and slave have "
                     "equal MariaDB server ids; these ids must be different for replication "
                     "to work (or the --replicate-same-server-id option must be used on slave "
                     "but this does not always make sense; please check the manual before "
                     "using it).",
}
BAD_LOGIN_ROW = {**SAME_ID_ROW, "Last_IO_Errno": 1045,
                 "Last_IO_Error": "error connecting to master 'repl@10.5.1.211:3306' - retry"
                                  "-time: 1  maximum-retries: 100000  message: Access denied"}
ADMIN_GRANTS = [
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, INDEX, ALTER, "
    "REPLICATION SLAVE, BINLOG MONITOR, CREATE USER, REPLICATION SLAVE ADMIN, SLAVE MONITOR "
    "ON *.* TO `tp5admin`@`10.5.1.1` IDENTIFIED BY PASSWORD '*8D26713DD0D25BC48233A5126F7C79"
    "64EEF34FD6' WITH GRANT OPTION",
]


@pytest.fixture(scope="module")
def inventory():
    return build_nornir(check_lab=False).inventory


def render(inventory, host: str, template: str, **extra: str) -> str:
    return render_template(template, **host_context(inventory.hosts[host], inventory), **extra)


@pytest.fixture()
def lab_secret_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    secrets_dir = tmp_path / "secrets"
    monkeypatch.setattr("tasks.core.state.SECRETS_DIR", secrets_dir)
    return secrets_dir


# --- SHOW SLAVE STATUS ------------------------------------------------------------------

def test_parse_healthy_replica() -> None:
    status = parse_slave_status([HEALTHY_ROW])
    assert status is not None
    assert status.running and status.healthy and status.last_error == ""
    assert status.points_at("10.5.1.211", 3306, "repl")
    assert not status.points_at("10.5.1.212", 3306, "repl")
    assert status.gtid_io_pos == "0-1-3841"


def test_parse_no_primary_configured() -> None:
    assert parse_slave_status([]) is None
    assert parse_slave_status([{**HEALTHY_ROW, "Master_Host": ""}]) is None


def test_parse_errors_and_lag() -> None:
    same = parse_slave_status([SAME_ID_ROW])
    assert same is not None and not same.running and not same.healthy
    assert same.last_error.startswith("IO thread error 1593: Fatal error")
    stopped = parse_slave_status([STOPPED_ROW])
    assert stopped is not None and stopped.seconds_behind is None and not stopped.healthy
    lagging = parse_slave_status([{**HEALTHY_ROW, "Seconds_Behind_Master": 4}])
    assert lagging is not None and lagging.running and not lagging.healthy


@pytest.mark.parametrize(("row", "expected"), [
    (None, ["change_master", "start"]),
    (HEALTHY_ROW, []),
    (STOPPED_ROW, ["start"]),
    ({**HEALTHY_ROW, "Slave_SQL_Running": "No"}, ["start"]),
    (BAD_LOGIN_ROW, ["change_master", "start"]),
    (SAME_ID_ROW, ["start"]),
    ({**HEALTHY_ROW, "Master_Host": "10.5.1.99"}, ["change_master", "start"]),
    ({**HEALTHY_ROW, "Using_Gtid": "No"}, ["change_master", "start"]),
])
def test_replica_actions_never_reset_a_healthy_replica(row, expected) -> None:
    status = parse_slave_status([row]) if row else None
    assert replica_actions(status, "10.5.1.211", 3306, "repl") == expected


# --- GTID ---------------------------------------------------------------------------------

def test_gtid_positions() -> None:
    assert parse_gtid_pos("0-1-12,1-2-3") == {0: 12, 1: 3}
    assert parse_gtid_pos("") == {}
    assert gtid_reached("0-1-12", "0-1-12")
    assert gtid_reached("0-1-13,1-2-1", "0-1-12")
    assert not gtid_reached("0-1-11", "0-1-12")
    assert not gtid_reached("0-1-12", "0-1-12,1-2-1")
    assert gtid_reached("", "")


# --- accounts and privileges --------------------------------------------------------------

def test_admin_grants_have_nothing_that_bypasses_read_only() -> None:
    assert forbidden_admin_privileges(ADMIN_GRANTS) == []
    assert forbidden_admin_privileges(
        ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]
    ) == ["ALL PRIVILEGES"]
    assert forbidden_admin_privileges(
        ["GRANT SELECT, SUPER, READ_ONLY ADMIN ON *.* TO `x`@`%`",
         "GRANT ALL PRIVILEGES ON `app_nulle`.* TO `x`@`%`"]
    ) == ["SUPER", "READ_ONLY ADMIN"]


def test_native_password_hash_matches_mariadb() -> None:
    # PASSWORD('secret') on MariaDB 10.11.
    assert native_password_hash("secret") == "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
    inner = hashlib.sha1(b"x").digest()
    assert native_password_hash("x") == "*" + hashlib.sha1(inner).hexdigest().upper()


def _accounts() -> list[Account]:
    app = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
    return [Account("app_nulle", "10.5.1.11", "*A", app, "app_nulle.*"),
            Account("repl", "10.5.1.212", "*R", frozenset({"REPLICATION SLAVE"}), "*.*")]


def test_account_statements_from_scratch_then_nothing() -> None:
    fresh = account_statements(_accounts(), {}, {}, ["app_nulle", "repl"])
    assert [s.describe for s in fresh] == [
        "create account 'app_nulle'@'10.5.1.11'",
        "grant DELETE, INSERT, SELECT, UPDATE ON app_nulle.* to 'app_nulle'@'10.5.1.11'",
        "create account 'repl'@'10.5.1.212'",
        "grant REPLICATION SLAVE ON *.* to 'repl'@'10.5.1.212'",
    ]
    assert all("*A" not in s.describe and "*R" not in s.describe for s in fresh)
    user_rows = [{"GRANTEE": "'app_nulle'@'10.5.1.11'", "PRIVILEGE_TYPE": "USAGE"},
                 {"GRANTEE": "'repl'@'10.5.1.212'", "PRIVILEGE_TYPE": "REPLICATION SLAVE"}]
    schema_rows = [{"GRANTEE": "'app_nulle'@'10.5.1.11'", "TABLE_SCHEMA": "app_nulle",
                    "PRIVILEGE_TYPE": p} for p in ("SELECT", "INSERT", "UPDATE", "DELETE")]
    privileges = privilege_sets(user_rows, schema_rows)
    hashes = {("app_nulle", "10.5.1.11"): "*A", ("repl", "10.5.1.212"): "*R"}
    assert account_statements(_accounts(), hashes, privileges, ["app_nulle", "repl"]) == []


def test_account_statements_fix_password_extra_privilege_and_removed_host() -> None:
    hashes = {("app_nulle", "10.5.1.11"): "*OLD", ("repl", "10.5.1.212"): "*R",
              ("app_nulle", "10.5.1.19"): "*A", ("root", "localhost"): ""}
    privileges = {("app_nulle", "10.5.1.11"): {f"{p} ON app_nulle.*" for p in
                                               ("SELECT", "INSERT", "UPDATE", "DELETE")},
                  ("repl", "10.5.1.212"): {"REPLICATION SLAVE ON *.*", "SUPER ON *.*"}}
    plan = [s.describe for s in account_statements(_accounts(), hashes, privileges,
                                                   ["app_nulle", "repl"])]
    assert plan == [
        "drop account 'app_nulle'@'10.5.1.19'",
        "set the password of 'app_nulle'@'10.5.1.11'",
        "revoke the privileges of 'repl'@'10.5.1.212'",
        "grant REPLICATION SLAVE ON *.* to 'repl'@'10.5.1.212'",
    ]


# --- rendering ----------------------------------------------------------------------------

def test_settings_per_role(inventory) -> None:
    db1 = render(inventory, "db1", "mariadb/60-tp5.cnf.j2")
    db2 = render(inventory, "db2", "mariadb/60-tp5.cnf.j2")
    assert "server_id = 1\n" in db1 and "server_id = 2\n" in db2
    assert "bind_address = 10.5.1.211\n" in db1 and "bind_address = 10.5.1.212\n" in db2
    for text in (db1, db2):
        assert "log_bin = tp5-bin\n" in text and "gtid_strict_mode = ON\n" in text
        assert "relay_log = tp5-relay\n" in text and "[mysqld]\n" in text
        # Every node boots read-only in the replica role, whatever its inventory role.
        assert "read_only = ON\n" in text and "init_rpl_role = SLAVE\n" in text
        assert "\nread_only = OFF" not in text
        for line in ("sync_binlog = 1", "innodb_flush_log_at_trx_commit = 1",
                     "sync_relay_log = 1", "log_slave_updates = ON",
                     "rpl_semi_sync_slave_enabled = ON", "rpl_semi_sync_master_enabled = OFF",
                     "rpl_semi_sync_master_wait_point = AFTER_SYNC",
                     "rpl_semi_sync_master_timeout = 18446744073709551615",
                     "rpl_semi_sync_master_wait_no_slave = ON", "slave_net_timeout = 4",
                     "rpl_semi_sync_slave_kill_conn_timeout = 1"):
            assert f"\n{line}\n" in text, line


def test_the_live_settings_checked_are_the_templates(inventory) -> None:
    text = render(inventory, "db2", "mariadb/60-tp5.cnf.j2")
    values = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    spelled = {"1": {"1", "ON"}, "SLAVE": {"SLAVE"}, "AFTER_SYNC": {"AFTER_SYNC"},
               "4": {"4"}, "18446744073709551615": {"18446744073709551615"}}
    for name, want in DURABILITY.items():
        if name == "log_bin":
            assert values[name] == "tp5-bin"
            continue
        assert values[name] in spelled[want], name


def test_settings_check_command_knows_the_intended_values(inventory) -> None:
    expected = expected_variables(inventory.hosts["db2"])
    assert expected["read-only"] == "TRUE" and expected["server-id"] == "2"
    command = mariadb_check(expected)
    assert "mariadbd --help --verbose" in command
    assert "read-only=TRUE" in command and "bind-address=10.5.1.212" in command
    assert expected_variables(inventory.hosts["db1"])["read-only"] == "TRUE"
    assert expected_variables(inventory.hosts["db1"])["init-rpl-role"] == "SLAVE"
    (spec,) = db_files(inventory.hosts["db2"])
    assert (spec.path, spec.service, spec.validate_cmd) == (MARIADB_SETTINGS, "mariadb", command)
    assert spec.reload_cmd == "service mariadb restart" and not spec.checks_candidate


def test_app_db_settings(inventory) -> None:
    page = render(inventory, "web1", "php/db.php.j2", db_pass="pw'with\\quote")
    assert page.startswith("<?php\n")
    for line in ("$db_host = '10.5.1.211';", "$db_port = 3306;", "$db_name = 'app_nulle';",
                 "$db_user = 'app_nulle';", "$db_pass = 'pw\\'with\\\\quote';",
                 "$db_replica_host = '10.5.1.212';"):
        assert line in page
    assert primary_of(inventory).name == "db1"
    assert php_string("a'b\\c") == "'a\\'b\\\\c'"


def test_db_target_comes_from_the_settings(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lab = DbTarget.from_settings(load_settings())
    assert lab.is_lab and lab.admin_from("10.5.1.211") == "10.5.1.1"
    config = tmp_path / "config.yaml"
    config.write_text("user_defined:\n  target: real\n")
    real = DbTarget.from_settings(load_settings(config))
    monkeypatch.delenv("TP5_DB_ADMIN_FROM", raising=False)
    # Real machines: by default only the controller's own address toward the node (here the
    # loopback route: 127.0.0.1), never any host ('%') unless said explicitly.
    assert not real.is_lab and real.admin_from("127.0.0.1") == "127.0.0.1"
    monkeypatch.setenv("TP5_DB_ADMIN_FROM", "10.9.0.%")
    assert real.admin_from("127.0.0.1") == "10.9.0.%"
    for hostile in ("%' IDENTIFIED BY 'x", "a b", "", "10.0.0.1\n", "é.example"):
        monkeypatch.setenv("TP5_DB_ADMIN_FROM", hostile)
        with pytest.raises(DbError, match="TP5_DB_ADMIN_FROM"):
            real.admin_from("127.0.0.1")
    monkeypatch.delenv("TP5_DB_ADMIN_FROM")
    monkeypatch.delenv("TP5_DB_APP_PASSWORD", raising=False)
    with pytest.raises(ProjectError, match="TP5_DB_APP_PASSWORD"):
        real.secrets  # noqa: B018  (read on first use, from the environment)


def test_describe_error_is_one_line_for_mariadb_and_for_the_rest() -> None:
    import pymysql

    assert describe_error(pymysql.err.OperationalError(1045, "Access denied")) == \
        "(1045) Access denied"
    assert describe_error(RuntimeError("verify: apache2 is not running")) == \
        "verify: apache2 is not running"
    assert describe_error(RuntimeError("")) == "RuntimeError"


# --- secrets ------------------------------------------------------------------------------

def test_lab_secrets_generated_once_private(lab_secret_dir: Path) -> None:
    first = lab_secrets()
    again = lab_secrets()
    assert first == again
    assert len({first.app, first.replication, first.admin}) == 3
    assert stat.S_IMODE(os.stat(lab_secret_dir).st_mode) == 0o700
    for name in ("db_app", "db_replication", "db_admin"):
        assert stat.S_IMODE(os.stat(lab_secret_dir / name).st_mode) == 0o600
    assert first.admin not in repr(first) and first.app not in repr(first)


def test_env_secrets_name_missing_variables() -> None:
    with pytest.raises(ProjectError) as err:
        env_secrets({"TP5_DB_APP_PASSWORD": "a"})
    assert "TP5_DB_REPL_PASSWORD" in str(err.value) and "TP5_DB_ADMIN_PASSWORD" in str(err.value)
    assert "TP5_DB_APP_PASSWORD" not in str(err.value)
    full = env_secrets({var: f"pw-{name}" for name, var in ENV_VARS.items()})
    assert full == DbSecrets(app="pw-app", replication="pw-replication", admin="pw-admin")


# --- cluster view -------------------------------------------------------------------------

ACKED = SemiSync(master_enabled=True, master_status=True, clients=1, yes_tx=5)


def _node(name: str, role: str, **kw) -> NodeStatus:
    return NodeStatus(name, {"db1": "10.5.1.211", "db2": "10.5.1.212"}[name], role, **kw)


def test_cluster_status_healthy_and_problems() -> None:
    primary = _node("db1", "primary", server_id=1, read_only=False, gtid_binlog_pos="0-1-5",
                    semi=ACKED)
    healthy = _node("db2", "replica", server_id=2, read_only=True, gtid_slave_pos="0-1-5",
                    gtid_current_pos="0-1-5", replica=parse_slave_status([HEALTHY_ROW]))
    cluster = cluster_status([primary, healthy])
    assert cluster.ok and cluster.primary == "db1"
    broken = _node("db2", "replica", server_id=2, read_only=False,
                   replica=parse_slave_status([SAME_ID_ROW]))
    problems = cluster_status([primary, broken]).problems
    assert "db2: the replica is not read-only" in problems
    assert "db2: replication threads IO=No SQL=Yes" in problems
    assert any(p.startswith("db2: IO thread error 1593") for p in problems)
    down = _node("db1", "primary", reachable=False, error="db1: cannot connect")
    assert cluster_status([down, healthy]).problems == [
        "no node accepts writes (no primary)", "db1: unreachable: db1: cannot connect"]


def test_a_node_whose_status_failed_is_reported_not_dropped() -> None:
    from nornir.core.inventory import Host
    from nornir.core.task import AggregatedResult, MultiResult, Result

    from tasks.db.verify import cluster_from_results

    agg = AggregatedResult("db_status")
    primary = NodeStatus("db1", "10.5.1.211", "primary", server_id=1, read_only=False,
                         semi=ACKED)
    for name, address, role, outcome in (
        ("db1", "10.5.1.211", "primary", primary),
        ("db2", "10.5.1.212", "replica", RuntimeError("(2013, 'Lost connection')")),
    ):
        host = Host(name, hostname=address, data={"db_role": role})
        multi = MultiResult("db_status")
        if isinstance(outcome, Exception):
            multi.append(Result(host=host, exception=outcome, failed=True))
        else:
            multi.append(Result(host=host, result=outcome))
        agg[name] = multi
    cluster = cluster_from_results(agg)
    assert not cluster.ok
    assert cluster.problems == ["db2: unreachable: (2013, 'Lost connection')"]
    # Asking the replica alone is not "no primary".
    del agg["db1"]
    assert cluster_from_results(agg).problems == [
        "db2: unreachable: (2013, 'Lost connection')"]
