"""Certificates for the listeners Tessera terminates TLS on (idp/web.py, idp/mtls.py).

A certificate/key pair is checked before any listener is given it (`load_pair`): a broken
pair written during a rotation is refused and the old one keeps serving. `Watch` notices a
changed pair (the paths are followed each time, so a certbot `live/` symlink switching to
the new files counts). `development_pair` makes the self-signed pair of IDP_TLS_DEV_CERT.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

WATCH_SECONDS = 1.0  # how often the pair's files are looked at (two stat calls)
DEV_NAMES = ("localhost",)
DEV_ADDRESSES = ("127.0.0.1", "::1")
DEV_VALID_DAYS = 365
DEV_RENEW_DAYS = 30  # a development certificate this close to expiry is made anew


_SIGNING_ONLY = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


class PairError(ValueError):
    """The certificate/key pair cannot be served; the message says why."""


@dataclass(frozen=True)
class Pair:
    chain_pem: bytes  # the leaf first, then its intermediates, as read
    key_pem: bytes  # PKCS#8 PEM, unencrypted (granian reads PKCS#8 only)
    serial: int
    not_after: datetime.datetime
    subject: str


def load_pair(cert_file: Path, key_file: Path) -> Pair:
    """The pair at these paths, or PairError: unreadable, not PEM, an encrypted or unsupported
    key, or a key that is not the leaf certificate's."""
    try:
        chain_pem, key_pem = cert_file.read_bytes(), key_file.read_bytes()
    except OSError as error:
        raise PairError(f"cannot read the pair: {error}") from error
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as error:
        raise PairError(f"{cert_file} holds no PEM certificate: {error}") from error
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise PairError(f"{key_file} holds no unencrypted PEM private key: {error}") from error
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise PairError(f"{key_file}: a {type(key).__name__} cannot sign TLS handshakes here")
    leaf = chain[0]
    if leaf.public_key() != key.public_key():
        raise PairError(f"the key in {key_file} is not the key of the first certificate")
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Pair(
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
        key_pem=pkcs8,
        serial=leaf.serial_number,
        not_after=leaf.not_valid_after_utc,
        subject=leaf.subject.rfc4514_string(),
    )


def write_private(path: Path, data: bytes) -> None:
    """Written whole, readable by the owner only, then renamed over `path`: a reader never sees
    half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    partial.replace(path)


class Watch:
    """Says when either file of the pair changed since the last look (inode, size, mtime of
    the file the path leads to now)."""

    def __init__(self, *paths: Path) -> None:
        self.paths = paths
        self.seen = self._signature()

    def _signature(self) -> tuple[tuple[int, int, int], ...]:
        signature = []
        for path in self.paths:
            try:
                stat = path.stat()
            except OSError:
                signature.append((0, 0, 0))  # missing for a moment during a rotation
            else:
                signature.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(signature)

    def changed(self) -> bool:
        now = self._signature()
        if now == self.seen:
            return False
        self.seen = now
        return True


def development_pair(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for localhost, 127.0.0.1 and ::1, kept in `directory`
    and reused until DEV_RENEW_DAYS before it expires (IDP_TLS_DEV_CERT; docs/tls.md says
    how to trust it)."""
    cert_file, key_file = directory / "dev-cert.pem", directory / "dev-key.pem"
    try:
        pair = load_pair(cert_file, key_file)
    except PairError:
        pair = None
    now = datetime.datetime.now(datetime.UTC)
    if pair is not None and pair.not_after - now > datetime.timedelta(days=DEV_RENEW_DAYS):
        return cert_file, key_file
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tessera development certificate"),
        ]
    )
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in DEV_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in DEV_ADDRESSES]
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DEV_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNING_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a process finding the new certificate finds its key too.
    write_private(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_private(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file
