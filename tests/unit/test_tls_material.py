"""The database TLS material (tasks.core.tls): a CA and node certificates generated into the
state directory, reused while right, and accepted by a real TLS client for the address dialled.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks.core import state, tls
from tasks.core.settings import REPO_ROOT, ProjectError

NODE = ("db1", "10.5.1.211", ("db1.tp5.b2",))


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_ca_signs_a_node_certificate_for_its_address_and_name(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    made = tls.ensure_server(*NODE, folder=folder)
    ca, cert = load(folder / "ca.pem"), load(folder / "db1.pem")
    cert.verify_directly_issued_by(ca)  # raises unless the CA signed it
    assert made.ca_pem == (folder / "ca.pem").read_text()
    assert made.cert_pem == (folder / "db1.pem").read_text()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.5.1.211")]
    assert san.get_values_for_type(x509.DNSName) == ["db1.tp5.b2"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    key = serialization.load_pem_private_key(made.key_pem.encode(), password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert made.key_pem not in repr(made)


def test_the_folder_is_0700_and_every_file_0600(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    tls.ensure_server(*NODE, folder=folder)
    tls.ensure_server("db2", "10.5.1.212", folder=folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert set(files) >= {"ca.pem", "ca.key", "db1.pem", "db1.key", "db2.pem", "db2.key"}
    assert set(files.values()) == {0o600}, files
    # A file made looser by hand is tightened again on the next use.
    (folder / "db1.key").chmod(0o644)
    tls.ensure_server(*NODE, folder=folder)
    assert stat.S_IMODE((folder / "db1.key").stat().st_mode) == 0o600


def test_the_default_folder_is_the_state_directory_outside_the_repository() -> None:
    assert state.TLS_DIR == state.STATE_DIR / "tls" and tls.tls_dir() == state.TLS_DIR
    assert tls.ca_file() == state.TLS_DIR / "ca.pem"
    assert REPO_ROOT not in state.TLS_DIR.parents


def test_an_existing_valid_ca_and_certificate_are_reused(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    first = tls.ensure_server(*NODE, folder=folder)
    ca_key = (folder / "ca.key").read_bytes()
    again = tls.ensure_server(*NODE, folder=folder)
    assert again == first and (folder / "ca.key").read_bytes() == ca_key
    assert tls.ensure_ca(folder).public_bytes(serialization.Encoding.PEM).decode() \
        == first.ca_pem
    # Another node, or this node at a new address: a new certificate from the same CA.
    other = tls.ensure_server("db2", "10.5.1.212", folder=folder)
    moved = tls.ensure_server("db1", "10.5.1.221", ("db1.tp5.b2",), folder=folder)
    assert other.ca_pem == moved.ca_pem == first.ca_pem
    assert moved.cert_pem != first.cert_pem and moved.key_pem != first.key_pem
    load(folder / "db1.pem").verify_directly_issued_by(load(folder / "ca.pem"))


def test_a_certificate_from_another_ca_or_near_its_end_is_issued_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, foreign = tmp_path / "tls", tmp_path / "foreign"
    first = tls.ensure_server(*NODE, folder=folder)
    tls.ensure_server(*NODE, folder=foreign)
    for name in ("db1.pem", "db1.key"):
        (folder / name).write_bytes((foreign / name).read_bytes())
    fixed = tls.ensure_server(*NODE, folder=folder)
    assert fixed.ca_pem == first.ca_pem
    load(folder / "db1.pem").verify_directly_issued_by(load(folder / "ca.pem"))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=tls.SERVER_DAYS - 10)
    monkeypatch.setattr(tls, "_now", lambda: later)
    renewed = tls.ensure_server(*NODE, folder=folder)
    assert renewed.ca_pem == first.ca_pem and renewed.cert_pem != fixed.cert_pem
    assert load(folder / "db1.pem").not_valid_after_utc > later + tls.RENEW_BEFORE


@pytest.mark.parametrize("damage", ["garbage", "other key", "not a CA", "expiring"])
def test_a_ca_that_cannot_be_reused_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    folder, other = tmp_path / "tls", tmp_path / "other"
    tls.ensure_server(*NODE, folder=folder)
    tls.ensure_server(*NODE, folder=other)
    before = (folder / "ca.pem").read_bytes()
    if damage == "garbage":
        (folder / "ca.pem").write_text("not a certificate\n")
    elif damage == "other key":
        (folder / "ca.key").write_bytes((other / "ca.key").read_bytes())
    elif damage == "not a CA":
        for suffix in ("pem", "key"):
            (folder / f"ca.{suffix}").write_bytes((other / f"db1.{suffix}").read_bytes())
    else:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=tls.CA_DAYS - 5)
        monkeypatch.setattr(tls, "_now", lambda: later)
    with pytest.raises(ProjectError) as err:
        tls.ensure_server(*NODE, folder=folder)
    assert str(folder / "ca") in str(err.value) and f"remove {folder}" in str(err.value)
    if damage == "expiring":
        assert (folder / "ca.pem").read_bytes() == before  # never replaced behind one's back


@pytest.mark.parametrize(("node", "address", "names", "field"), [
    ("../db1", "10.5.1.211", (), "host '../db1'"),
    ("db1\n", "10.5.1.211", (), "host 'db1\\n'"),
    ("db1", "db1.example", (), "address 'db1.example'"),
    ("db1", "10.5.1.211 ", (), "address '10.5.1.211 '"),
    ("db1", "10.5.1.211", ("db1.tp5.b2\n",), "'db1.tp5.b2\\n'"),
    ("db1", "10.5.1.211", ("db1..b2",), "'db1..b2'"),
])
def test_names_and_addresses_are_checked_before_any_file_is_made(
    tmp_path: Path, node: str, address: str, names: tuple[str, ...], field: str
) -> None:
    with pytest.raises(ProjectError, match="TLS: ") as err:
        tls.ensure_server(node, address, names, folder=tmp_path / "tls")
    assert field in str(err.value)
    assert not (tmp_path / "tls").exists()


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> str:
    """A TLS handshake in memory; the cipher agreed, or the client's error."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cli = client.wrap_bio(c_in, c_out, server_hostname=name)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (cli, srv):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if cli.cipher() and srv.cipher():
            return str(cli.cipher()[0])
    raise AssertionError("no handshake")


def test_a_verifying_client_accepts_the_address_dialled_and_nothing_else(
    tmp_path: Path
) -> None:
    """What pymysql does with ssl_ca + ssl_verify_identity: CA and IP SAN checked."""
    folder = tmp_path / "tls"
    tls.ensure_server(*NODE, folder=folder)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "db1.pem", folder / "db1.key")
    client = ssl.create_default_context(cafile=str(tls.ca_file(folder)))
    assert handshake(server, client, "10.5.1.211")
    assert handshake(server, client, "db1.tp5.b2")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(server, client, "10.5.1.212")
    tls.ensure_ca(tmp_path / "other")
    stranger = ssl.create_default_context(cafile=str(tls.ca_file(tmp_path / "other")))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(server, stranger, "10.5.1.211")
