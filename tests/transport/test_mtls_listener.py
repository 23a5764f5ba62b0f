"""Tessera's own mutual-TLS listener (idp/mtls.py: cheroot + pyOpenSSL), RFC 8705: a client
certificate, CA-signed or self-signed, reaches the WSGI application as SSL_CLIENT_CERT (PEM,
mod_ssl's name); none is fine; the TLS policy is the main listener's. Real handshakes with
Python's ssl; the environ is read by a WSGI app of the test's own, and one end-to-end run of
`python -m idp.mtls` serves Django."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from OpenSSL import SSL

from idp import mtls, tls
from tests.servers import free_port, wait_for
from tests.transport import servers as transport
from tests.transport.certs import Issued, issue
from tests.transport.servers import (
    HEALTHZ,
    client_context,
    handshake,
    offering_only,
    served_serial,
)

V12 = ssl.TLSVersion.TLSv1_2
ECHO = (
    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nSSL-Client-Cert: forged\r\nConnection: close\r\n\r\n"
)


def _echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    shown = {k: v for k, v in environ.items() if k.startswith(("SSL_", "HTTP_SSL", "HTTPS"))}
    shown["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
    body = json.dumps(shown).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


@pytest.fixture(scope="module")
def ca() -> Issued:
    return issue("Tessera mTLS test CA", ca=True)


class Running:
    def __init__(
        self, tmp: Path, ca: Issued, minimum: str = "1.3", curves: str = "X25519:P-256:P-384"
    ):
        self.cafile = tmp / "ca.pem"
        self.cafile.write_bytes(ca.pem)
        self.cert, self.key = issue("127.0.0.1", issuer=ca, server=True).write(
            tmp / "server.pem", tmp / "server-key.pem"
        )
        self.settings = SimpleNamespace(
            MTLS_BIND="127.0.0.1", MTLS_PORT=free_port(), WEB_THREADS=4,
            TLS_MIN_VERSION=minimum, TLS_CURVES=curves,
        )  # fmt: skip
        self.server, self.adapter = mtls.build_server(
            _echo, self.settings, tls.load_pair(self.cert, self.key)
        )
        self.server.prepare()
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.settings.MTLS_PORT)

    def echo(self, context: ssl.SSLContext) -> dict[str, str]:
        done = handshake(self.port, context, ECHO)
        assert done.status == 200, done.answer[:300]
        return dict(json.loads(done.answer.split(b"\r\n\r\n", 1)[1]))

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(30)


@pytest.fixture
def listener(ca, tmp_path) -> Iterator[Running]:
    running = Running(tmp_path, ca)
    yield running
    running.stop()


def _with_client_cert(
    running: Running, tmp: Path, client: Issued, chain: bytes = b""
) -> ssl.SSLContext:
    cert, key = client.write(tmp / "client.pem", tmp / "client-key.pem", chain)
    context = client_context(running.cafile)
    context.load_cert_chain(cert, key)
    return context


def test_a_self_signed_client_certificate_reaches_the_app_as_pem(listener, tmp_path) -> None:
    # RFC 8705 §2.2: self_signed_tls_client_auth needs a certificate no CA vouches for.
    client = issue("self-signed client")
    environ = listener.echo(_with_client_cert(listener, tmp_path, client))
    assert environ["SSL_CLIENT_CERT"] == client.pem.decode()
    assert environ["SSL_CLIENT_VERIFY"] == "GENEROUS"  # presented, judged by the application
    assert environ["SSL_PROTOCOL"] == "TLSv1.3"
    assert (environ["HTTPS"], environ["wsgi.url_scheme"]) == ("on", "https")
    # A header of that name arrives as a header, never as the environ key (mod_ssl's rule).
    assert environ["HTTP_SSL_CLIENT_CERT"] == "forged"


def test_a_ca_signed_client_certificate_arrives_with_its_chain(listener, ca, tmp_path) -> None:
    # RFC 8705 §2.1: tls_client_auth; the application checks the chain against its CA file.
    intermediate = issue("intermediate", issuer=ca, ca=True)
    client = issue("client.example", issuer=intermediate)
    environ = listener.echo(_with_client_cert(listener, tmp_path, client, intermediate.pem))
    assert environ["SSL_CLIENT_CERT"] == client.pem.decode()
    assert environ["SSL_CLIENT_CERT_CHAIN_0"] == intermediate.pem.decode()


def test_no_client_certificate_is_fine(listener) -> None:
    environ = listener.echo(client_context(listener.cafile))
    assert "SSL_CLIENT_CERT" not in environ
    assert environ["SSL_CLIENT_VERIFY"] == "NONE"


def test_garbage_and_broken_handshakes_do_not_stop_it(listener) -> None:
    for garbage in (
        b"\x16\x03\x01\x00\x05hello" * 50,  # a TLS record header, then nonsense
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # plain HTTP on the TLS port
        os.urandom(4096),
    ):
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw:
            raw.sendall(garbage)
            raw.settimeout(10)
            with contextlib.suppress(OSError):
                raw.recv(4096)
    raw = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    raw.close()  # connected, then gone before any handshake
    assert listener.echo(client_context(listener.cafile))["SSL_CLIENT_VERIFY"] == "NONE"


def test_tls_policy_is_the_main_listeners(listener, ca, tmp_path) -> None:
    context = client_context(listener.cafile, maximum_version=V12)
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        handshake(listener.port, context)
    offered = client_context(listener.cafile)
    offered.set_alpn_protocols(["h2", "http/1.1"])
    assert handshake(listener.port, offered).alpn == "http/1.1"  # cheroot speaks HTTP/1.1

    (tmp_path / "relaxed").mkdir()
    relaxed = Running(tmp_path / "relaxed", ca, "1.2")
    try:
        context = client_context(relaxed.cafile, maximum_version=V12)
        context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        assert relaxed.echo(context)["SSL_PROTOCOL"] == "TLSv1.2"
        for refused in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):  # CBC
            context = client_context(relaxed.cafile, maximum_version=V12)
            context.set_ciphers(refused)
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                handshake(relaxed.port, context)
    finally:
        relaxed.stop()


def test_curves_come_from_the_setting(ca, tmp_path) -> None:
    # IDP_TLS_CURVES (here P-384 alone) applies where OpenSSL terminates TLS.
    running = Running(tmp_path, ca, curves="P-384")
    try:
        assert offering_only(running.port, running.cafile, "P-384") == "TLSv1.3"
        for other in ("X25519", "P-256"):
            with pytest.raises(SSL.Error, match="handshake failure"):
                offering_only(running.port, running.cafile, other)
    finally:
        running.stop()


def test_a_rotated_pair_is_used_for_new_connections(listener, ca) -> None:
    stop = threading.Event()
    watcher = threading.Thread(
        target=mtls.watch_pair, args=(listener.settings, listener.adapter, stop,
                                      (listener.cert, listener.key)), daemon=True,
    )  # fmt: skip
    watcher.start()
    try:
        context = client_context(listener.cafile)
        old = served_serial(listener.port, context)
        listener.cert.write_bytes(b"not a certificate")  # refused: the old pair stays
        new = issue("127.0.0.1", issuer=ca, server=True)
        listener.key.write_bytes(new.key_pem)
        listener.cert.write_bytes(new.pem)
        wait_for(
            lambda: served_serial(listener.port, context) == new.certificate.serial_number,
            30,
            "the new certificate was not served",
        )
        assert old != new.certificate.serial_number
    finally:
        stop.set()
        watcher.join(10)


@pytest.mark.usefixtures("servers", "django_db_setup")
def test_python_m_idp_mtls_serves_django_with_and_without_a_client_certificate(
    ca, tmp_path
) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(ca.pem)
    cert, key = issue("127.0.0.1", issuer=ca, server=True).write(
        tmp_path / "c.pem", tmp_path / "k.pem"
    )
    env = {"IDP_TLS_CERT_FILE": str(cert), "IDP_TLS_KEY_FILE": str(key)}
    with transport.mtls(tmp_path, cafile, **env) as listener:
        client = issue("self-signed client")
        with_cert = client_context(cafile)
        with_cert.load_cert_chain(*client.write(tmp_path / "cc.pem", tmp_path / "ck.pem"))
        assert handshake(listener.port, with_cert, HEALTHZ).status == 200
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw:
            raw.sendall(os.urandom(2048))
        assert handshake(listener.port, client_context(cafile), HEALTHZ).status == 200
        assert listener.process.poll() is None
