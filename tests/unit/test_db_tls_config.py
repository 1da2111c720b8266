"""What TLS changes in the db tier's files, SQL and connections: everything on real machines
(``target: real``), nothing in the lab (plain connections, as the README says)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nornir.core.filter import F

from tasks.core import tls
from tasks.core.nornir_build import build_nornir
from tasks.core.settings import load_settings
from tasks.db import failover
from tasks.db.deploy import admin_bootstrap_sql, desired_accounts
from tasks.db.facts import (
    Account,
    account_statements,
    grants_require_ssl,
    parse_slave_status,
    replica_actions,
)
from tasks.db.roles import change_master_sql
from tasks.db.sql import DbError, DbTarget, tls_options
from tasks.db.status import NodeStatus
from tasks.deploy.files import (
    MARIADB_SETTINGS,
    by_service,
    db_files,
    expected_variables,
    host_files,
    tls_check,
)
from tasks.deploy.plan import plan_host
from tasks.deploy.render import host_context, render_template

LAB = DbTarget(is_lab=True, bridge="tp5br0", bridge_address="10.5.1.1/24")
REAL = DbTarget(is_lab=False, bridge="tp5br0", bridge_address="10.5.1.1/24")
# SHOW SLAVE STATUS of the lab's db2 replicating over verified TLS (MariaDB 10.11), reduced.
TLS_ROW = {
    "Master_Host": "10.5.1.211", "Master_User": "repl", "Master_Port": 3306,
    "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 0,
    "Last_IO_Errno": 0, "Last_SQL_Errno": 0, "Using_Gtid": "Slave_Pos",
    "Gtid_IO_Pos": "0-1-40", "Master_SSL_Allowed": "Yes", "Master_SSL_CA_File": tls.NODE_CA,
    "Master_SSL_Verify_Server_Cert": "Yes",
}
PLAIN_ROW = {**TLS_ROW, "Master_SSL_Allowed": "No", "Master_SSL_CA_File": "",
             "Master_SSL_Verify_Server_Cert": "No"}
# SHOW GRANTS of the admin account on the lab's db1 after a real-mode deploy.
ADMIN_GRANT_TLS = (
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, INDEX, ALTER, "
    "REPLICATION SLAVE, BINLOG MONITOR, CREATE USER, REPLICATION SLAVE ADMIN, REPLICATION "
    "MASTER ADMIN, SLAVE MONITOR ON *.* TO `tp5admin`@`10.5.1.1` IDENTIFIED BY PASSWORD "
    "'*BAB8E47D5C0C66C6A0EB4AE53F6190C4AB578DED' REQUIRE SSL WITH GRANT OPTION")


@pytest.fixture(scope="module")
def inventory():
    return build_nornir(check_lab=False).inventory


# --- the server's settings and files ------------------------------------------------------

def test_the_settings_turn_tls_on_for_real_machines_only(inventory) -> None:
    host = inventory.hosts["db1"]
    real = render_template("mariadb/60-tp5.cnf.j2", **host_context(host, inventory, True))
    lab = render_template("mariadb/60-tp5.cnf.j2", **host_context(host, inventory))
    for line in (f"ssl_ca = {tls.NODE_CA}", f"ssl_cert = {tls.NODE_CERT}",
                 f"ssl_key = {tls.NODE_KEY}", "tls_version = TLSv1.2,TLSv1.3"):
        assert f"\n{line}\n" in real, line
    assert "ssl" not in lab and "tls" not in lab
    assert [line for line in real.splitlines() if line not in lab.splitlines()
            and not line.startswith("#")] == [
        f"ssl_ca = {tls.NODE_CA}", f"ssl_cert = {tls.NODE_CERT}", f"ssl_key = {tls.NODE_KEY}",
        "tls_version = TLSv1.2,TLSv1.3"]
    # mariadbd must read the files the settings name, or the push is rolled back.
    assert expected_variables(host, True)["ssl-key"] == tls.NODE_KEY
    assert "ssl-ca" not in expected_variables(host)


def test_real_db_nodes_get_their_tls_files_with_the_settings_in_one_restart(inventory) -> None:
    host = inventory.hosts["db2"]
    assert [s.path for s in db_files(host)] == [MARIADB_SETTINGS]
    assert [s.path for s in host_files(host)] == [MARIADB_SETTINGS]
    specs = db_files(host, True)
    assert [s.path for s in specs] == [tls.NODE_CA, tls.NODE_CERT, tls.NODE_KEY,
                                       MARIADB_SETTINGS]
    key = specs[2]
    assert (key.mode, key.owner, key.secret, key.inputs) == (
        "0640", "root:mysql", True, ("tls_key",))
    assert [(s.mode, s.owner, s.secret) for s in specs[:2]] == [("0644", "root:root", False)] * 2
    (group,) = by_service(specs)
    assert group.reload_cmd == "service mariadb restart"
    assert tls_check() in str(group.validate_cmd) and "ssl-key=" in str(group.validate_cmd)
    assert "runuser -u mysql -- test -r /etc/mysql/tls/server.key" in tls_check()
    # The web and proxy tiers are the same in both modes.
    for name in ("web1", "rp1"):
        assert host_files(inventory.hosts[name], True) == host_files(inventory.hosts[name])


def plans(host: str, config: Path | None, target: DbTarget) -> list[Any]:
    nr = build_nornir(load_settings(config), check_lab=False)
    result = nr.filter(F(name=host)).run(task=plan_host, inventory=nr.inventory,
                                         is_lab=target.is_lab, db=target)
    assert not result.failed, result[host][0].result
    return result[host][0].result


def test_the_real_plan_pushes_the_generated_material_and_never_shows_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.core.state.TLS_DIR", tmp_path / "tls")
    (mariadb,) = plans("db2", None, REAL)
    files = {f.path: f for f in mariadb.files}
    generated = tls.ensure_server("db2", "10.5.1.212", ("db2.tp5.b2",))  # reused: same PEMs
    assert files[tls.NODE_CA].content == generated.ca_pem
    assert files[tls.NODE_CERT].content == generated.cert_pem
    assert files[tls.NODE_KEY].content == generated.key_pem and files[tls.NODE_KEY].secret
    assert generated.key_pem not in repr(mariadb)
    assert f"ssl_key = {tls.NODE_KEY}" in files[MARIADB_SETTINGS].content
    lab = plans("db2", None, LAB)
    assert [f.path for f in lab[0].files] == [MARIADB_SETTINGS]
    assert {p.name for p in (tmp_path / "tls").iterdir()} == {
        ".lock", "ca.pem", "ca.key", "db2.pem", "db2.key"}


# --- accounts -------------------------------------------------------------------------------

def test_the_admin_account_requires_ssl_on_real_machines_only() -> None:
    real = admin_bootstrap_sql("10.5.1.1", "*AB", True)
    lab = admin_bootstrap_sql("10.5.1.1", "*AB", False)
    assert "IDENTIFIED BY PASSWORD '*AB' REQUIRE SSL;" in real
    assert real.count("REQUIRE SSL") == 2 and "REQUIRE NONE" not in real
    assert lab.count("REQUIRE NONE") == 2 and "REQUIRE SSL" not in lab
    assert grants_require_ssl([ADMIN_GRANT_TLS])
    assert not grants_require_ssl([ADMIN_GRANT_TLS.replace(" REQUIRE SSL", "")])
    assert not grants_require_ssl(["GRANT SELECT ON `REQUIRE SSL`.* TO `x`@`y`"])


def test_the_replication_account_requires_ssl_on_real_machines_only(
    inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("TP5_DB_APP_PASSWORD", "TP5_DB_REPL_PASSWORD", "TP5_DB_ADMIN_PASSWORD"):
        monkeypatch.setenv(var, "pw")
    primary = inventory.hosts["db1"]
    real = desired_accounts(primary, inventory, REAL)
    assert {(a.user, a.require_ssl) for a in real} == {("repl", True), ("app_nulle", False)}
    repl = next(a for a in real if a.user == "repl")
    statements = account_statements([repl], {}, {}, ["repl"])
    assert statements[0].describe == f"create account {repl.name} (REQUIRE SSL)"
    assert statements[0].sql.endswith("IDENTIFIED BY PASSWORD %s REQUIRE SSL")


def _repl(require_ssl: bool) -> Account:
    return Account("repl", "10.5.1.212", "*R", frozenset({"REPLICATION SLAVE"}), "*.*",
                   require_ssl=require_ssl)


@pytest.mark.parametrize(("require_ssl", "ssl_type", "expected"), [
    (True, "", ["require TLS for 'repl'@'10.5.1.212'", "ALTER USER %s@%s REQUIRE SSL"]),
    (True, "ANY", []),
    (True, "X509", ["require TLS for 'repl'@'10.5.1.212'", "ALTER USER %s@%s REQUIRE SSL"]),
    (False, "ANY", ["no longer require TLS for 'repl'@'10.5.1.212'",
                    "ALTER USER %s@%s REQUIRE NONE"]),
    (False, "", []),
])
def test_an_existing_account_gets_the_tls_requirement_of_the_mode(
    require_ssl: bool, ssl_type: str, expected: list[str]
) -> None:
    key = ("repl", "10.5.1.212")
    privileges = {key: {"REPLICATION SLAVE ON *.*"}}
    out = account_statements([_repl(require_ssl)], {key: "*R"}, privileges, ["repl"],
                             {key: ssl_type})
    assert [x for s in out for x in (s.describe, s.sql)] == expected
    assert all(s.args == key for s in out)


# --- replication ----------------------------------------------------------------------------

def test_change_master_spells_out_the_channels_tls_in_both_modes() -> None:
    real = change_master_sql("10.5.1.211", 3306, "pw'x", demote=True, tls=True)
    lab = change_master_sql("10.5.1.211", 3306, "pw'x", demote=True, tls=False)
    assert ("MASTER_SSL = 1, MASTER_SSL_CA = '/etc/mysql/tls/ca.pem', "
            "MASTER_SSL_VERIFY_SERVER_CERT = 1, MASTER_DEMOTE_TO_SLAVE = 1;") in real
    # A CHANGE MASTER keeps what it does not name: the lab's says plain explicitly.
    assert "MASTER_SSL = 0, MASTER_SSL_CA = '', MASTER_SSL_VERIFY_SERVER_CERT = 0" in lab
    for sql in (real, lab):
        assert sql.startswith("STOP SLAVE;\nCHANGE MASTER TO MASTER_HOST = '10.5.1.211'")
        assert "MASTER_PASSWORD = 'pw\\'x'" in sql


@pytest.mark.parametrize(("row", "tls_on", "expected"), [
    (TLS_ROW, True, []),
    (PLAIN_ROW, True, ["change_master", "start"]),
    ({**TLS_ROW, "Master_SSL_Verify_Server_Cert": "No"}, True, ["change_master", "start"]),
    (PLAIN_ROW, False, []),
    (TLS_ROW, False, ["change_master", "start"]),
    ({**TLS_ROW, "Slave_IO_Running": "No", "Last_IO_Errno": 2026}, True,
     ["change_master", "start"]),
])
def test_a_replica_is_pointed_again_when_its_channel_is_not_the_modes(
    row: dict[str, Any], tls_on: bool, expected: list[str]
) -> None:
    status = parse_slave_status([row])
    assert status is not None and status.verified_tls == (
        row["Master_SSL_Allowed"] == row["Master_SSL_Verify_Server_Cert"] == "Yes")
    assert replica_actions(status, "10.5.1.211", 3306, "repl", tls_on) == expected


class FakeConn:
    """Answers the semi-sync read of make_replica (0: off already), records statements."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __enter__(self) -> FakeConn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def cursor(self) -> Any:
        conn = self

        class Cursor:
            def __enter__(self) -> Cursor:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def execute(self, sql: str, args: object = None) -> None:
                conn.log.append(sql)

            def fetchall(self) -> list[dict[str, int]]:
                return [{"v": 0}]

        return Cursor()


class FakeTier:
    """The two calls make_replica makes: SQL as admin, and a Nornir task as root."""

    def __init__(self, target: DbTarget, inventory: Any) -> None:
        self.target, self.inventory = target, inventory
        self.sql: list[str] = []
        self.tasks: list[tuple[str, dict[str, Any]]] = []

    def host(self, name: str) -> Any:
        return self.inventory.hosts[name]

    def conn(self, name: str) -> FakeConn:
        return FakeConn(self.sql)

    def on(self, name: str, task: Any, **kwargs: Any) -> None:
        self.tasks.append((task.__name__, {"node": name, **kwargs}))


@pytest.mark.parametrize("target", [REAL, LAB])
def test_switchover_and_rejoin_point_a_node_with_the_modes_tls(
    inventory, monkeypatch: pytest.MonkeyPatch, target: DbTarget
) -> None:
    """make_replica is the one CHANGE MASTER of switchover (the old primary) and rejoin."""
    monkeypatch.setattr(DbTarget, "secrets", property(lambda self: type(
        "S", (), {"replication": "pw"})()))
    tier = FakeTier(target, inventory)
    failover.make_replica(tier, "db1", "db2")  # type: ignore[arg-type]
    ((name, kwargs),) = tier.tasks
    assert name == "follow_primary"
    assert kwargs == {"node": "db1", "address": "10.5.1.212", "port": 3306, "password": "pw",
                      "demote": True, "tls": target.tls}
    assert tier.sql[-1] == "START SLAVE"


def test_the_controllers_connections_verify_tls_on_real_machines_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.core.state.TLS_DIR", tmp_path / "tls")
    assert tls_options(LAB, "db1") == {"ssl_disabled": True}
    with pytest.raises(DbError) as err:
        tls_options(REAL, "db1")
    assert str(err.value).startswith(f"db1: no database CA at {tmp_path / 'tls' / 'ca.pem'}")
    tls.ensure_ca()
    assert tls_options(REAL, "db1") == {"ssl_ca": str(tmp_path / "tls" / "ca.pem"),
                                        "ssl_verify_cert": True, "ssl_verify_identity": True}
    assert REAL.tls and not LAB.tls


@pytest.mark.parametrize(("row", "target", "follows"), [
    (TLS_ROW, REAL, True), (PLAIN_ROW, REAL, False), (PLAIN_ROW, LAB, True),
    (TLS_ROW, LAB, False), ({**TLS_ROW, "Slave_IO_Running": "No"}, REAL, False),
])
def test_rejoin_leaves_alone_only_a_replica_on_the_modes_channel(
    inventory, row: dict[str, Any], target: DbTarget, follows: bool
) -> None:
    class Named(FakeTier):
        def by_address(self, address: str) -> str | None:
            return {"10.5.1.211": "db1", "10.5.1.212": "db2"}.get(address)

    node = NodeStatus("db2", "10.5.1.212", "replica", read_only=True,
                      replica=parse_slave_status([row]))
    assert failover._follows(Named(target, inventory), node, "db1") is follows  # type: ignore
