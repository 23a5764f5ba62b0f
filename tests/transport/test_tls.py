"""Tessera terminating TLS itself (idp/web.py: granian's rustls): real handshakes with Python's
ssl (OpenSSL) and curl. Issue 18, "TLS"; docs/tls.md."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from OpenSSL import SSL

from idp import tls
from tests.servers import wait_for
from tests.transport import servers
from tests.transport.certs import Issued, issue
from tests.transport.servers import (
    HEALTHZ,
    client_context,
    handshake,
    offering_only,
    served_serial,
)

V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
pytestmark = pytest.mark.usefixtures("servers", "django_db_setup")


@pytest.fixture(scope="module")
def ca() -> Issued:
    return issue("Tessera transport test CA", ca=True)


@pytest.fixture(scope="module")
def default_server(ca, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls-default")
    cafile = tmp / "ca.pem"
    cafile.write_bytes(ca.pem)
    cert, key = issue("127.0.0.1", issuer=ca, server=True).write(tmp / "c.pem", tmp / "k.pem")
    with servers.web(tmp, cafile, IDP_TLS_CERT_FILE=str(cert), IDP_TLS_KEY_FILE=str(key)) as web:
        yield web, cafile


def test_tls_1_3_is_accepted(default_server) -> None:
    web, cafile = default_server
    done = handshake(web.port, client_context(cafile, minimum_version=V13), HEALTHZ)
    assert (done.status, done.version) == (200, "TLSv1.3")


def test_tls_1_2_is_refused_by_default(default_server) -> None:
    # RFC 8446 only unless IDP_TLS_MIN_VERSION=1.2.
    web, cafile = default_server
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        handshake(web.port, client_context(cafile, maximum_version=V12))


def test_http2_is_offered_and_served_over_tls(default_server) -> None:
    web, cafile = default_server
    context = client_context(cafile)
    context.set_alpn_protocols(["h2", "http/1.1"])
    assert handshake(web.port, context).alpn == "h2"  # RFC 9113 §3.2
    if shutil.which("curl") is None:
        pytest.fail("curl is needed for the HTTP/2 request")
    answered = subprocess.run(
        ["curl", "--silent", "--http2", "--cacert", str(cafile), "--output", "/dev/null",
         "--write-out", "%{http_version} %{http_code}", f"https://127.0.0.1:{web.port}/healthz"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert answered.stdout == "2 200"


@pytest.mark.parametrize("group", ["X25519", "P-256", "P-384"])
def test_the_offered_key_exchange_groups_are_accepted(default_server, group) -> None:
    web, cafile = default_server
    assert offering_only(web.port, cafile, group) == "TLSv1.3"


def test_other_key_exchange_groups_are_refused(default_server) -> None:
    # rustls has X25519, P-256 and P-384 (docs/tls.md): granian cannot be told otherwise.
    web, cafile = default_server
    with pytest.raises(SSL.Error, match="handshake failure"):
        offering_only(web.port, cafile, "P-521")


def _tls12(cafile: Path, ciphers: str) -> ssl.SSLContext:
    context = client_context(cafile, maximum_version=V12)
    context.set_ciphers(ciphers)
    return context


def test_tls_1_2_when_enabled_offers_only_ecdhe_with_aead(ca, tmp_path) -> None:
    # RFC 9325 §4.2: ECDHE key exchange, AEAD ciphers. An RSA certificate, so that a refused
    # RSA-key-exchange or DHE suite is refused for the suite, not for the key type.
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(ca.pem)
    pair = issue("127.0.0.1", issuer=ca, server=True, rsa_key=True)
    cert, key = pair.write(tmp_path / "c.pem", tmp_path / "k.pem")
    env = {"IDP_TLS_CERT_FILE": str(cert), "IDP_TLS_KEY_FILE": str(key)}
    with servers.web(tmp_path, cafile, IDP_TLS_MIN_VERSION="1.2", **env) as web:
        done = handshake(web.port, _tls12(cafile, "ECDHE-RSA-AES128-GCM-SHA256"), HEALTHZ)
        assert (done.status, done.version) == (200, "TLSv1.2")
        assert done.cipher == "ECDHE-RSA-AES128-GCM-SHA256"
        done = handshake(web.port, _tls12(cafile, "ECDHE-RSA-CHACHA20-POLY1305"))
        assert (done.version, done.cipher) == ("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305")
        for refused in (
            "AES128-GCM-SHA256",  # RSA key exchange: no forward secrecy
            "DHE-RSA-AES128-GCM-SHA256",  # finite-field DHE
            "ECDHE-RSA-AES128-SHA",  # CBC
            "ECDHE-RSA-AES256-SHA384",  # CBC
        ):
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                handshake(web.port, _tls12(cafile, refused))


def test_a_rotated_pair_is_served_without_a_restart_or_a_failed_request(ca, tmp_path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(ca.pem)
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    old = issue("127.0.0.1", issuer=ca, server=True)
    old.write(cert, key)
    env = {"IDP_TLS_CERT_FILE": str(cert), "IDP_TLS_KEY_FILE": str(key)}
    with servers.web(tmp_path, cafile, **env) as web:
        context = client_context(cafile)
        assert served_serial(web.port, context) == old.certificate.serial_number
        failures: list[str] = []  # refused, or answered with an error
        dropped: list[str] = []  # closed by the stopping worker before it answered
        served = [0]
        stop = threading.Event()

        def keep_asking() -> None:  # a new connection each time: each one a handshake
            while not stop.is_set():
                try:
                    done = handshake(web.port, context, HEALTHZ)
                except (ssl.SSLEOFError, ConnectionResetError) as error:
                    dropped.append(repr(error))
                    continue
                except OSError as error:  # refused, or a handshake that failed
                    failures.append(repr(error))
                    continue
                if done.status == 200:
                    served[0] += 1
                else:
                    failures.append(done.answer[:200].decode(errors="replace"))

        client = threading.Thread(target=keep_asking)
        client.start()
        try:
            wait_for(lambda: served[0] >= 3, 30, "no request served before the rotation")
            new = issue("127.0.0.1", issuer=ca, server=True)
            rotated = time.monotonic()
            # Rewritten in place, key first: for a moment the key is not the certificate's,
            # which the supervisor refuses (and logs) until the certificate follows.
            key.write_bytes(new.key_pem)
            cert.write_bytes(new.pem)
            wait_for(
                lambda: served_serial(web.port, context) == new.certificate.serial_number,
                60,
                "the new certificate was not served",
            )
            elapsed = time.monotonic() - rotated
            before = served[0]
            wait_for(lambda: served[0] >= before + 3, 30, "no request served after")
        finally:
            stop.set()
            client.join(30)
        counts = f"{served[0]} served, {len(failures)} failed, {len(dropped)} dropped"
        print(f"rotation: new certificate served {elapsed:.2f}s after the change; {counts}")
        assert failures == []
        # granian's stopping worker closes a connection it accepted but had not read yet (at
        # most the one in flight per worker; docs/tls.md): the client may retry it (RFC 9110
        # §9.2.2), nothing was processed.
        assert len(dropped) <= 1, dropped
        reloads = [json.loads(line) for line in web.log_text().splitlines()
                   if '"tls.reloaded"' in line]  # fmt: skip
        assert reloads[-1]["serial"] == f"{new.certificate.serial_number:x}"


def test_a_broken_pair_is_refused_and_the_old_one_keeps_serving(ca, tmp_path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(ca.pem)
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    old = issue("127.0.0.1", issuer=ca, server=True)
    old.write(cert, key)
    env = {"IDP_TLS_CERT_FILE": str(cert), "IDP_TLS_KEY_FILE": str(key)}
    with servers.web(tmp_path, cafile, **env) as web:
        other = issue("127.0.0.1", issuer=ca, server=True)
        cert.write_bytes(other.pem)  # its key never comes
        wait_for(lambda: '"tls.reload_refused"' in web.log_text(), 30, "no refusal logged")
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        wait_for(lambda: web.log_text().count('"tls.reload_refused"') >= 2, 30, "not logged")
        web.process.send_signal(signal.SIGHUP)  # `systemctl reload`: check the files now
        wait_for(lambda: web.log_text().count('"tls.reload_refused"') >= 3, 30, "HUP ignored")
        context = client_context(cafile)
        assert served_serial(web.port, context) == old.certificate.serial_number
        assert handshake(web.port, context, HEALTHZ).status == 200
        assert '"tls.reloaded"' not in web.log_text()
        copy = settings.DATA_DIR / "run" / f"tls.{web.process.pid}"
        assert (copy / "key.pem").stat().st_mode & 0o777 == 0o600
    # SIGTERM reached granian through the supervisor; the checked copy went with them.
    assert web.process.returncode == 0
    assert not copy.exists()


def test_load_pair_says_what_is_wrong(tmp_path) -> None:
    pair = issue("x")
    cert, key = pair.write(tmp_path / "c.pem", tmp_path / "k.pem")
    assert tls.load_pair(cert, key).serial == pair.certificate.serial_number
    (tmp_path / "other.pem").write_bytes(issue("y").key_pem)
    with pytest.raises(tls.PairError, match="not the key of the first certificate"):
        tls.load_pair(cert, tmp_path / "other.pem")
    with pytest.raises(tls.PairError, match="no PEM certificate"):
        tls.load_pair(key, key)
    with pytest.raises(tls.PairError, match="cannot read"):
        tls.load_pair(tmp_path / "missing.pem", key)
    # A PKCS#1 RSA key (`openssl genrsa` of old) is served as the PKCS#8 granian reads.
    rsa_pair = issue("z", rsa_key=True)
    (tmp_path / "rsa.pem").write_bytes(
        rsa_pair.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    rsa_cert, _ = rsa_pair.write(tmp_path / "rsa-cert.pem", tmp_path / "unused.pem")
    loaded = tls.load_pair(rsa_cert, tmp_path / "rsa.pem")
    assert loaded.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_the_development_certificate_is_made_once_and_reused(tmp_path) -> None:
    cert, key = tls.development_pair(tmp_path / "tls")
    first = tls.load_pair(cert, key)
    assert tls.development_pair(tmp_path / "tls") == (cert, key)
    assert tls.load_pair(cert, key).serial == first.serial
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_the_development_certificate_serves_https_for_localhost(tmp_path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "IDP_DATA_DIR": str(data), "IDP_TLS_DEV_CERT": "1", "PORT": "8443"}
    env.pop("IDP_ISSUER", None)
    printed = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; import django; django.setup();"
         " print(settings.ISSUER, settings.TLS_CERT_FILE)"],
        env={**env, "DJANGO_SETTINGS_MODULE": "idp.settings"}, capture_output=True, text=True,
        timeout=60, check=True, cwd=servers.ROOT,
    ).stdout.split()  # fmt: skip
    assert printed == ["https://127.0.0.1:8443", str(data / "tls" / "dev-cert.pem")]
    cafile = data / "tls" / "dev-cert.pem"  # what docs/tls.md tells a client to trust
    dev_env = {"IDP_DATA_DIR": str(data), "IDP_TLS_DEV_CERT": "1"}
    with servers.web(tmp_path, cafile, **dev_env) as web:
        done = handshake(web.port, client_context(cafile), HEALTHZ, "localhost")
        assert (done.status, done.version) == (200, "TLSv1.3")
