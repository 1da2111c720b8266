"""TLS of the database tier on real machines, tried on the lab's nodes described as real ones
(``target: real``, the lab's key and pinned host keys): the controller's connections and
replication run over verified TLS, plain logins of the framework's accounts are refused, and a
switchover keeps replication on TLS. A lab-mode deploy then puts the tier back to plain.

The tier is left as found: primary db1, replica db2, in sync, plain (lab mode; the TLS files
stay on the nodes, unused).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pymysql
import pytest
from nornir.core import Nornir
from nornir.core.task import AggregatedResult
from test_safety import real_mode_config

from tasks.core import tls
from tasks.core.guard import check_addresses
from tasks.core.nornir_build import build_nornir
from tasks.core.secrets import ENV_VARS, lab_secrets
from tasks.core.settings import Settings, load_settings
from tasks.db.failover import switchover
from tasks.db.sql import ADMIN_USER, REPL_USER, DbTarget, connect_admin, query
from tasks.db.status import cluster_status
from tasks.db.tier import Steps, Tier
from tasks.db.verify import tier_statuses, wait_marker, write_marker
from tasks.deploy.host import Stack, deploy_host
from tasks.deploy.order import TierGate
from tasks.deploy.report import HostReport
from tp5lab import paths
from tp5lab.control import Lab

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("db_tier_kept")]

DB = "app_nulle"
DB1, DB2 = "10.5.1.211", "10.5.1.212"


def deploy_db(settings: Settings) -> tuple[AggregatedResult, DbTarget, Nornir]:
    """The per-host deploy of the db hosts under `settings` (the lab or 'real')."""
    everyone = build_nornir(settings, check_lab=False)
    nr = build_nornir(settings, groups=["db"])
    assert check_addresses("tp5br0", [h.hostname for h in nr.inventory.hosts.values()]) == []
    target = DbTarget.from_settings(settings)
    result = nr.run(task=deploy_host, stack=Stack(everyone.inventory, target,
                                                  TierGate({"db": 2})))
    assert not result.failed, {h: str(m[0].exception) for h, m in result.items() if m.failed}
    return result, target, nr


def report(result: AggregatedResult, name: str) -> HostReport:
    found = result[name][0].result
    assert isinstance(found, HostReport)
    return found


def actions(result: AggregatedResult, name: str) -> list[str]:
    return report(result, name).actions


def slave_status(conn: pymysql.connections.Connection) -> dict[str, str]:
    return {k: str(v) for k, v in query(conn, "SHOW SLAVE STATUS")[0].items()}


def assert_tls_replica(target: DbTarget, nr: Nornir, primary: str, replica: str) -> None:
    """`replica` replicates from `primary` over verified TLS, and a row gets through."""
    pconn = connect_admin(target, nr.inventory.hosts[primary])
    rconn = connect_admin(target, nr.inventory.hosts[replica])
    status = slave_status(rconn)
    assert (status["Master_Host"], status["Master_SSL_Allowed"],
            status["Master_SSL_Verify_Server_Cert"], status["Master_SSL_CA_File"]) == (
        nr.inventory.hosts[primary].hostname, "Yes", "Yes", tls.NODE_CA), status
    assert wait_marker(rconn, DB, write_marker(pconn, DB, "over TLS"), 10.0) is not None
    assert slave_status(rconn)["Slave_IO_Running"] == "Yes"


def plain_login(address: str, user: str, password: str) -> pymysql.MySQLError:
    """The error of a plain (non-TLS) login, which must be refused."""
    with pytest.raises(pymysql.MySQLError) as refused:
        pymysql.connect(host=address, user=user, password=password, ssl_disabled=True,
                        connect_timeout=3)
    return refused.value


def inside(lab: Lab, host: str, command: str, password: str) -> subprocess.CompletedProcess[str]:
    argv = lab.nsenter_argv(host, ["env", f"MYSQL_PWD={password}", "sh", "-c", command])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def node_stat(lab: Lab, host: str, path: str) -> str:
    argv = lab.nsenter_argv(host, ["stat", "-c", "%a %U:%G", path])
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_real_mode_runs_the_controller_and_replication_over_verified_tls(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab_settings = load_settings()
    deploy_db(lab_settings)  # the tier as a lab deploy leaves it: plain
    passwords = lab_secrets()
    for name, var in ENV_VARS.items():  # 'real' reads them from the environment
        monkeypatch.setenv(var, getattr(passwords, name))
    monkeypatch.setattr("tasks.core.state.TLS_DIR", tmp_path / "tls")
    real = load_settings(real_mode_config(tmp_path, paths.KNOWN_HOSTS))
    result, target, nr = deploy_db(real)
    assert target.tls
    assert f"require TLS for '{REPL_USER}'@'{DB2}'" in actions(result, "db1")
    assert any(a.startswith("replicate from db1") and a.endswith("TLS verified")
               for a in actions(result, "db2")), actions(result, "db2")
    for name in ("db1", "db2"):
        assert node_stat(lab, name, tls.NODE_KEY) == "640 root:mysql"
    assert {p.name for p in (tmp_path / "tls").iterdir()} >= {"ca.pem", "ca.key", "db1.pem",
                                                              "db1.key", "db2.pem", "db2.key"}
    again, _, _ = deploy_db(real)  # certificates reused, accounts and replication kept
    assert not again["db1"][0].changed and not again["db2"][0].changed, \
        (actions(again, "db1"), actions(again, "db2"))

    # The controller's session is TLS, and its certificate was checked.
    conn = connect_admin(target, nr.inventory.hosts["db1"])
    assert query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0]["Value"]
    grants = " ".join(str(next(iter(r.values()))) for r in query(conn, "SHOW GRANTS"))
    assert "REQUIRE SSL" in grants, grants
    tls.ensure_ca(tmp_path / "other-ca")  # a CA the servers' certificates do not chain to
    with pytest.raises(pymysql.MySQLError, match="CERTIFICATE_VERIFY_FAILED"):
        pymysql.connect(host=DB1, user=ADMIN_USER, password=passwords.admin,
                        ssl_ca=str(tls.ca_file(tmp_path / "other-ca")), ssl_verify_cert=True,
                        ssl_verify_identity=True, connect_timeout=3)

    # Plain logins of the admin and replication accounts are refused (REQUIRE SSL); the
    # replication account is tried from db2, where it may log in from.
    assert plain_login(DB1, ADMIN_USER, passwords.admin).args[0] == 1045
    client = f"mariadb -h {DB1} -u {REPL_USER} -N -e \"SHOW STATUS LIKE 'Ssl_cipher'\""
    plain = inside(lab, "db2", f"{client} --skip-ssl", passwords.replication)
    assert plain.returncode != 0 and "ERROR 1045" in plain.stderr, plain.stderr
    verified = inside(lab, "db2", f"{client} --ssl-ca={tls.NODE_CA} --ssl-verify-server-cert",
                      passwords.replication)
    assert verified.returncode == 0 and verified.stdout.split()[1:], verified.stderr

    # Replication runs over verified TLS, also after a switchover and back.
    assert_tls_replica(target, nr, "db1", "db2")
    tier = Tier(nr, target)
    quiet = Steps(out=lambda line: None)
    switchover(tier, "db2", quiet)
    assert_tls_replica(target, nr, "db2", "db1")
    switchover(tier, "db1", quiet)
    assert_tls_replica(target, nr, "db1", "db2")

    # A new CA (the old folder removed): the next deploy pushes certificates it signed.
    old_ca = tls.ca_file().read_text()
    monkeypatch.setattr("tasks.core.state.TLS_DIR", tmp_path / "tls-new")
    renewed, target, nr = deploy_db(real)
    assert tls.ca_file().read_text() != old_ca
    assert all(tls.NODE_CERT in report(renewed, n).files for n in ("db1", "db2"))
    assert_tls_replica(target, nr, "db1", "db2")

    # Back to plain, as the lab keeps it. Leaving TLS is two steps (real machines never do
    # it): the replication accounts first stop requiring it while the channel still runs
    # over TLS (the change replicates), then the lab deploy makes the channel plain. In one
    # step the primary's change would wait for an acknowledgement from a replica that can
    # no longer log in.
    primary = connect_admin(target, nr.inventory.hosts["db1"])
    for address in (DB1, DB2):
        query(primary, "ALTER USER %s@%s REQUIRE NONE", (REPL_USER, address))
    deploy_db(lab_settings)
    lab_target = DbTarget.from_settings(lab_settings)
    lab_nr = build_nornir(lab_settings, groups=["db"])
    replica = connect_admin(lab_target, lab_nr.inventory.hosts["db2"])
    assert query(replica, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0]["Value"] == ""
    status = slave_status(replica)
    assert (status["Master_SSL_Allowed"], status["Slave_IO_Running"]) == ("No", "Yes"), status
    grants = " ".join(str(next(iter(r.values()))) for r in query(replica, "SHOW GRANTS"))
    assert "REQUIRE SSL" not in grants, grants
    cluster = cluster_status(tier_statuses(lab_target, lab_nr.inventory))
    assert cluster.ok and cluster.primary == "db1", cluster.problems
