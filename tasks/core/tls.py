"""The database TLS material of real machines: a CA and one server certificate per db node,
generated on the controller into its state directory, like the passwords.

``tasks.core.state.TLS_DIR`` (directory 0700, every file 0600, nothing committed):

- ``ca.pem``, ``ca.key``: the CA (EC P-256, 10 years), made once and reused while it is
  valid; its key never leaves the controller. A CA that is damaged, mismatched with its key
  or about to expire is an error naming the file (remove the folder to start a new CA: the
  next deploy then issues and pushes new node certificates);
- ``<node>.pem``, ``<node>.key``: db node ``<node>``'s server certificate (2 years), signed by
  the CA, for the node's address (IP SAN) and its fully qualified name (DNS SAN). Issued again
  when missing, not signed by the current CA, for other names, mismatched with its key, or
  within ``RENEW_BEFORE`` of its expiry.

The controller and the replicas check a server's certificate against ``ca.pem`` and the
address they dial. There is no client certificate: the accounts log in with their password
inside the verified channel (``REQUIRE SSL``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tasks.core import state
from tasks.core.settings import ProjectError

# Where a db node of real machines holds its TLS files (pushed by the deploy): the CA and
# certificate readable by all, the key by root and the mysql group only.
NODE_DIR = "/etc/mysql/tls"
NODE_CA = f"{NODE_DIR}/ca.pem"
NODE_CERT = f"{NODE_DIR}/server.pem"
NODE_KEY = f"{NODE_DIR}/server.key"
CA_DAYS = 3650
SERVER_DAYS = 730
RENEW_BEFORE = dt.timedelta(days=30)
# A node's file name (its inventory name) and a DNS SAN: nothing that leaves the folder.
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
DNS_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ServerTls:
    """What one db node holds: the CA certificate, its own certificate and key (PEM)."""

    ca_pem: str
    cert_pem: str
    key_pem: str = field(repr=False)


def tls_dir() -> Path:
    return state.TLS_DIR


def ca_file(folder: Path | None = None) -> Path:
    """The CA certificate the controller checks the servers against."""
    return (folder or tls_dir()) / "ca.pem"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """The folder (0700) for this thread and process alone (a deploy plans hosts in
    parallel; two runbooks may run at once)."""
    with _LOCK:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _write(path: Path, data: bytes) -> None:
    """Write 0600 through a temporary file, then rename (never a half-written file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _same_key(cert: x509.Certificate, key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePrivateKey) and (
        cert.public_key().public_numbers() == key.public_key().public_numbers())


def _fresh(cert: x509.Certificate) -> bool:
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc > now + RENEW_BEFORE


def _new_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tp5ha"),
                      x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"tp5ha database CA {os.urandom(4).hex()}")])
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(folder / "ca.key", _pem_key(key))
    _write(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The existing CA, or ProjectError saying what is wrong with which file."""
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    start_over = f"remove {folder} to generate a new CA (the next deploy pushes new node " \
                 "certificates)"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ProjectError(f"{cert_path} / {key_path}: not a readable CA certificate and key "
                           f"({exc}): {start_over}") from None
    if not _is_ca(cert):
        raise ProjectError(f"{cert_path}: not a CA certificate: {start_over}")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_key(cert, key):
        raise ProjectError(f"{key_path} is not the key of {cert_path}: {start_over}")
    if not _fresh(cert):
        raise ProjectError(f"{cert_path}: expired or expires before "
                           f"{(_now() + RENEW_BEFORE).date()}: {start_over}")
    for path in (cert_path, key_path):
        os.chmod(path, 0o600)
    return cert, key


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def ensure_ca(folder: Path | None = None) -> x509.Certificate:
    """The CA certificate: the existing one when valid, a new one when there is none."""
    folder = folder or tls_dir()
    with _locked(folder):
        return _ensure_ca(folder)[0]


def _ensure_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not (folder / "ca.pem").exists() and not (folder / "ca.key").exists():
        return _new_ca(folder)
    return _load_ca(folder)


def _san(address: str, dns_names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address(address))]
        + [x509.DNSName(name) for name in dns_names])


def _issue(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, node: str,
           san: x509.SubjectAlternativeName) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tp5ha"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, node)]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _reusable(cert_path: Path, key_path: Path, ca: x509.Certificate,
              san: x509.SubjectAlternativeName) -> bool:
    """The node's existing certificate is signed by `ca`, for exactly `san`, with its key,
    and not about to expire."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return set(have) == set(san) and _same_key(cert, key) and _fresh(cert)


def check_node(node: str, address: str, dns_names: tuple[str, ...]) -> None:
    """ProjectError unless the name, address and DNS names are plain (full-string checks)."""
    if not NODE_NAME.fullmatch(node):
        raise ProjectError(f"TLS: host {node!r}: not a plain host name for a file name")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ProjectError(f"TLS: host {node}: address {address!r} is not an IP address "
                           "(the certificate names the address dialled)") from None
    for name in dns_names:
        if not DNS_NAME.fullmatch(name):
            raise ProjectError(f"TLS: host {node}: {name!r} is not a DNS name")


def ensure_server(node: str, address: str, dns_names: tuple[str, ...] = (),
                  folder: Path | None = None) -> ServerTls:
    """The CA (made when missing) and `node`'s certificate for `address` and `dns_names`
    (reused when still right, issued otherwise), as PEM texts for the node."""
    check_node(node, address, dns_names)
    folder = folder or tls_dir()
    san = _san(address, dns_names)
    with _locked(folder):
        ca, ca_key = _ensure_ca(folder)
        cert_path, key_path = folder / f"{node}.pem", folder / f"{node}.key"
        if _reusable(cert_path, key_path, ca, san):
            for path in (cert_path, key_path):
                os.chmod(path, 0o600)
        else:
            cert_pem, key_pem = _issue(ca, ca_key, node, san)
            _write(key_path, key_pem)
            _write(cert_path, cert_pem)
        return ServerTls(ca_pem=(folder / "ca.pem").read_text(),
                         cert_pem=cert_path.read_text(), key_pem=key_path.read_text())
