"""Writes the secret files deploy/compose.yaml mounts, under deploy/secrets/ (or --dir).

    .venv/bin/python deploy/compose/make_secrets.py --smtp-url smtp://user:pass@mail.example.com \
        --self-signed localhost            # or --tls-cert chain.pem --tls-key key.pem

Random values come from `secrets` (the secret key, the key-encryption key, the PostgreSQL and
ClickHouse passwords); the SMTP URL and the TLS certificate are the operator's. A file that
exists is never overwritten: a new key-encryption key would make every sealed signing key
unreadable (rotate it with IDP_KEY_ENCRYPTION_KEYS_OLD instead, README "Configuration").
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import ipaddress
import secrets
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "secrets"


def _clickhouse_users(password: str) -> str:
    digest = hashlib.sha256(password.encode()).hexdigest()
    return (
        "<clickhouse>\n  <users>\n    <tessera>\n"
        f"      <password_sha256_hex>{digest}</password_sha256_hex>\n"
        "      <networks><ip>::/0</ip></networks>\n"
        "      <profile>default</profile>\n      <quota>default</quota>\n"
        "    </tessera>\n  </users>\n</clickhouse>\n"
    )


def _self_signed(host: str) -> tuple[str, str]:
    """A P-256 certificate for `host`, valid 90 days: for trying the stack on one machine."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def secret_files(*, smtp_url: str, tls_certificate: str, tls_private_key: str) -> dict[str, str]:
    """Every file compose.yaml's `secrets:` names, by file name."""
    postgres_password = secrets.token_urlsafe(32)
    clickhouse_password = secrets.token_urlsafe(32)
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return {
        "IDP_SECRET_KEY": secrets.token_urlsafe(64),
        "IDP_KEY_ENCRYPTION_KEY": kek,
        "postgres_password": postgres_password,
        "DATABASE_URL": f"postgres://tessera:{quote(postgres_password)}@postgres:5432/tessera",
        "CLICKHOUSE_URL": (
            f"clickhouse://tessera:{quote(clickhouse_password)}@clickhouse:9000/tessera"
        ),
        "clickhouse_users.xml": _clickhouse_users(clickhouse_password),
        "IDP_SMTP_URL": smtp_url,
        "tls_certificate.pem": tls_certificate,
        "tls_private_key.pem": tls_private_key,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where to write them")
    parser.add_argument("--smtp-url", required=True, help="smtp://user:pass@host:587 or smtps://")
    tls = parser.add_mutually_exclusive_group(required=True)
    tls.add_argument("--self-signed", metavar="HOST", help="make a certificate for HOST")
    tls.add_argument("--tls-cert", type=Path, help="PEM certificate chain for nginx")
    parser.add_argument("--tls-key", type=Path, help="its PEM private key (with --tls-cert)")
    args = parser.parse_args(argv)

    if urlsplit(args.smtp_url).scheme not in ("smtp", "smtps"):
        parser.error("--smtp-url must be smtp://… (STARTTLS) or smtps://… (implicit TLS)")
    if args.self_signed:
        certificate, private_key = _self_signed(args.self_signed)
    elif args.tls_key is None:
        parser.error("--tls-cert needs --tls-key")
    else:
        certificate = args.tls_cert.read_text()
        private_key = args.tls_key.read_text()

    files = secret_files(
        smtp_url=args.smtp_url, tls_certificate=certificate, tls_private_key=private_key
    )
    existing = sorted(name for name in files if (args.dir / name).exists())
    if existing:
        print(f"{args.dir}: {', '.join(existing)} already exist; nothing written", file=sys.stderr)
        return 1
    args.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, content in files.items():
        path = args.dir / name
        # Readable by the containers' users (Compose bind-mounts each file as it is); the
        # directory, 0700, keeps other users of this host out.
        path.write_text(content if content.endswith("\n") else content + "\n")
        path.chmod(0o644)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
