"""The production commands started as production starts them, TLS on: `python -m idp.web`
(granian behind idp/web.py's supervisor) and `python -m idp.mtls` (idp/mtls.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL

from idp.mtls import set_groups
from idp.serve import mtls_listener_argv, web_server_argv
from tests.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Listener:
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@dataclass
class Negotiated:
    version: str
    cipher: str
    alpn: str | None
    answer: bytes

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1])


def handshake(
    port: int, context: ssl.SSLContext, request: bytes = b"", host: str = "127.0.0.1"
) -> Negotiated:
    """One TLS connection: what was negotiated, and the answer to `request` when one is sent."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        answer = b""
        if request:
            tls.sendall(request)
            while chunk := tls.recv(65536):
                answer += chunk
        cipher = tls.cipher()
        return Negotiated(
            str(tls.version()), cipher[0] if cipher else "", tls.selected_alpn_protocol(), answer
        )


def offering_only(port: int, cafile: Path, group: str) -> str:
    """A TLS 1.3 handshake whose client offers the key-exchange `group` alone (OpenSSL's
    name: X25519, P-256, P-384, P-521): the version negotiated, or SSL.Error when refused.
    Through pyOpenSSL, whose OpenSSL is cryptography's on every machine: the standard
    library's set_ecdh_curve('X25519') fails on Debian 12's Python 3.11 (UNKNOWN_GROUP)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_3_VERSION)
    context.load_verify_locations(str(cafile))
    context.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
    set_groups(context, group)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        # pyOpenSSL reads a socket with a Python timeout as non-blocking (WantReadError): the
        # kernel's timeouts bound the handshake instead.
        raw.settimeout(None)
        bound = struct.pack("ll", 10, 0)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, bound)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, bound)
        connection = SSL.Connection(context, raw)
        connection.set_tlsext_host_name(b"127.0.0.1")
        connection.set_connect_state()
        connection.do_handshake()
        version = connection.get_protocol_version_name()
        connection.shutdown()
        return version


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def served_serial(port: int, context: ssl.SSLContext) -> int | None:
    """The serial number of the certificate the listener presents now; None if no handshake."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return x509.load_der_x509_certificate(der).serial_number if der else None


def client_context(cafile: Path, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    for name, version in versions.items():
        setattr(context, name, version)
    return context


def healthz_over_tls(port: int, cafile: Path) -> bool:
    try:
        return handshake(port, client_context(cafile), HEALTHZ).status == 200
    except (OSError, ssl.SSLError):
        return False


@contextlib.contextmanager
def listener(
    argv: list[str], tmp: Path, cafile: Path, port: int | None = None, **env: str
) -> Iterator[Listener]:
    port = port or free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PORT": str(port),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "info",
        **env,
    }
    if argv == mtls_listener_argv(sys.executable):
        environ["PORT"] = str(free_port())
        environ["IDP_MTLS_PORT"] = str(port)
    log = tmp / f"listener-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Listener(port, log, process)
    try:
        wait_for(
            lambda: process.poll() is not None or healthz_over_tls(port, cafile),
            60,
            f"not serving: {log}",
        )
        assert process.poll() is None, server.log_text()
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def web(tmp: Path, cafile: Path, **env: str) -> contextlib.AbstractContextManager[Listener]:
    return listener(web_server_argv(sys.executable), tmp, cafile, **env)


def mtls(tmp: Path, cafile: Path, **env: str) -> contextlib.AbstractContextManager[Listener]:
    return listener(mtls_listener_argv(sys.executable), tmp, cafile, **env)
