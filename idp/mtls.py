"""Tessera's own mutual-TLS listener (RFC 8705): `python -m idp.mtls`, started by `make run`
when IDP_MTLS_PORT is set.

granian can neither hand a client certificate to the application nor accept a self-signed
one it has no CA for (RFC 8705 §2.2 self_signed_tls_client_auth needs exactly that). This
listener serves the same Django WSGI application with cheroot (CherryPy's WSGI server) and
pyOpenSSL, whose verify callback lets every certificate through the handshake, as nginx's
`ssl_verify_client optional_no_ca`: the certificate is asked for, optional, and the
application decides (apps/core/client_cert.py; tls_client_auth checks the chain against
IDP_MTLS_CLIENT_CA_FILE there). The leaf reaches Django as the WSGI environ key
SSL_CLIENT_CERT (PEM, mod_ssl's name), intermediates as SSL_CLIENT_CERT_CHAIN_0…; a client
cannot forge these: its headers arrive as HTTP_*.

Same protocol policy as the main listener (IDP_TLS_MIN_VERSION, ECDHE + AEAD only for TLS
1.2), key-exchange groups from IDP_TLS_CURVES, and the same certificate rotation: a changed
pair is checked, then used for new connections.
"""

from __future__ import annotations

import logging
import logging.config
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from cheroot import wsgi
from cheroot.ssl.pyopenssl import pyOpenSSLAdapter
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as openssl_lib  # SSL_CTX_set1_curves_list: see set_groups

from idp import tls

# TLS 1.2 suites: ECDHE key exchange, AEAD ciphers (RFC 9325 §4.2); TLS 1.3's are all AEAD.
TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"
SESSION_CONTEXT = b"tessera-mtls"  # OpenSSL refuses resumption with client certs without one
log = logging.getLogger("tessera.mtls")


def set_groups(context: SSL.Context, curves: str) -> None:
    """pyOpenSSL's only public setter (set_tmp_ecdh) takes one curve; OpenSSL's
    SSL_CTX_set1_curves_list (the same as set1_groups_list) takes the ordered list."""
    if openssl_lib.SSL_CTX_set1_curves_list(context._context, curves.encode()) != 1:
        raise tls.PairError(f"OpenSSL refused the key-exchange groups {curves!r}")


def _accept_any(
    connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int, ok: int
) -> bool:
    return True  # the application judges the certificate (RFC 8705 §2.1 and §2.2)


def context(pair: tls.Pair, minimum: str, curves: str) -> SSL.Context:
    """An OpenSSL server context for `pair` asking for an optional client certificate."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION if minimum == "1.3" else SSL.TLS1_2_VERSION)
    ctx.set_cipher_list(TLS12_CIPHERS)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_TICKET)
    set_groups(ctx, curves)
    certificates = x509.load_pem_x509_certificates(pair.chain_pem)
    ctx.use_certificate(certificates[0])
    for intermediate in certificates[1:]:
        ctx.add_extra_chain_cert(intermediate)
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise tls.PairError(f"a {type(key).__name__} cannot sign TLS handshakes here")
    ctx.use_privatekey(key)
    ctx.check_privatekey()
    # VERIFY_PEER without FAIL_IF_NO_PEER_CERT: asked for, optional; any certificate passes.
    ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
    ctx.set_session_id(SESSION_CONTEXT)
    ctx.set_alpn_select_callback(_http11)
    return ctx


def _http11(connection: SSL.Connection, offered: list[bytes]) -> bytes | Any:
    return b"http/1.1" if b"http/1.1" in offered else SSL.NO_OVERLAPPING_PROTOCOLS


class Adapter(pyOpenSSLAdapter):
    """cheroot's pyOpenSSL adapter with our context. `context` is replaced on rotation; the
    listening socket was wrapped with the first one, so each accepted connection is switched
    to the current one before its handshake (SSL_set_SSL_CTX: the certificate and key, as an
    SNI callback does; every context has the same protocol policy)."""

    def __init__(self, ctx: SSL.Context) -> None:
        super().__init__(certificate=None, private_key=None)
        self.context = ctx

    def wrap(self, sock: Any) -> tuple[Any, dict[str, str]]:
        if isinstance(sock, SSL.Connection) and sock.get_context() is not self.context:
            sock.set_context(self.context)
        return sock, self.get_environ()

    def get_environ(self) -> dict[str, str]:
        return {"wsgi.url_scheme": "https", "HTTPS": "on"}


class ClientCertGateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway plus the client certificate. The handshake is over by the
    time a request is read, so the peer certificate is known here (cheroot's own adapter
    fills nothing: it builds the environ before the handshake)."""

    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]  # cheroot's stub: None
        environ: dict[str, Any] = super().get_environ()  # type: ignore[no-untyped-call]
        # The listening socket is cheroot's SSLConnection; what it accepts is pyOpenSSL's.
        connection = self.req.conn.socket
        if isinstance(connection, SSL.Connection):
            environ.update(client_certificate_environ(connection))
        return environ


def client_certificate_environ(connection: SSL.Connection) -> dict[str, str]:
    """mod_ssl's names: SSL_CLIENT_CERT (PEM leaf), SSL_CLIENT_CERT_CHAIN_n, SSL_CLIENT_VERIFY
    (NONE, or GENEROUS: presented and not verified here), SSL_PROTOCOL, SSL_CIPHER."""
    environ = {
        "SSL_PROTOCOL": connection.get_protocol_version_name(),
        "SSL_CIPHER": connection.get_cipher_name() or "",
        "SSL_CLIENT_VERIFY": "NONE",
    }
    leaf = connection.get_peer_certificate(as_cryptography=True)
    if leaf is None:
        return environ
    from cryptography.hazmat.primitives.serialization import Encoding

    environ["SSL_CLIENT_CERT"] = leaf.public_bytes(Encoding.PEM).decode("ascii")
    environ["SSL_CLIENT_VERIFY"] = "GENEROUS"
    chain = connection.get_peer_cert_chain(as_cryptography=True) or []
    # On a server the peer chain leaves out the leaf (SSL_get_peer_cert_chain).
    for index, certificate in enumerate(c for c in chain if c != leaf):
        environ[f"SSL_CLIENT_CERT_CHAIN_{index}"] = certificate.public_bytes(Encoding.PEM).decode(
            "ascii"
        )
    return environ


def build_server(application: Any, settings: Any, pair: tls.Pair) -> tuple[wsgi.Server, Adapter]:
    server = wsgi.Server(
        (settings.MTLS_BIND, settings.MTLS_PORT),
        application,
        numthreads=settings.WEB_THREADS,
        server_name=settings.MTLS_BIND,
        timeout=10,  # seconds a connection may stay silent, the handshake included
    )
    server.gateway = ClientCertGateway
    adapter = Adapter(context(pair, settings.TLS_MIN_VERSION, settings.TLS_CURVES))
    server.ssl_adapter = adapter
    return server, adapter


def watch_pair(
    settings: Any, adapter: Adapter, stop: threading.Event, source: tuple[Path, Path]
) -> None:
    """New connections get the new pair once it loads; a broken one is logged and ignored."""
    watch = tls.Watch(*source)
    while not stop.wait(tls.WATCH_SECONDS):
        if not watch.changed():
            continue
        try:
            pair = tls.load_pair(*source)
            adapter.context = context(pair, settings.TLS_MIN_VERSION, settings.TLS_CURVES)
        except (tls.PairError, SSL.Error) as error:
            log.error("new TLS pair refused; the previous one keeps serving",
                      extra={"event": "tls.reload_refused", "reason": str(error)})  # fmt: skip
            continue
        log.info("TLS pair reloaded", extra={"event": "tls.reloaded", "serial": f"{pair.serial:x}",
                 "subject": pair.subject, "not_after": pair.not_after.isoformat()})  # fmt: skip


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    from django.conf import settings

    if settings.MTLS_PORT is None:
        raise SystemExit("tessera: IDP_MTLS_PORT is not set: there is no mutual-TLS listener")
    from idp.web import log_config

    config = log_config(settings.LOG_LEVEL)
    config["loggers"]["tessera.mtls"] = config["loggers"]["tessera.tls"]
    config["loggers"]["cheroot"] = config["loggers"]["tessera.tls"]
    logging.config.dictConfig(config)
    cert_file, key_file = settings.TLS_CERT_FILE, settings.TLS_KEY_FILE
    if cert_file is None or key_file is None:  # settings refuse one without the other
        raise SystemExit("tessera: IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE go together")
    source = (cert_file, key_file)
    try:
        pair = tls.load_pair(*source)
    except tls.PairError as error:
        raise SystemExit(f"tessera: the TLS pair cannot be served: {error}") from error

    from apps.core import metrics

    metrics.start_role(settings.METRICS_DIR, "mtls")  # before Django counts anything here
    from idp.wsgi import application

    server, adapter = build_server(application, settings, pair)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.stop, name="mtls-stop").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watcher = threading.Thread(
        target=watch_pair, args=(settings, adapter, stop, source), name="mtls-tls-watch",
        daemon=True,
    )  # fmt: skip
    watcher.start()
    log.info("mutual-TLS listener started", extra={"event": "mtls.listening",
             "address": f"{settings.MTLS_BIND}:{settings.MTLS_PORT}"})  # fmt: skip
    server.prepare()
    server.serve()
    stop.set()
    sys.exit(0)


if __name__ == "__main__":
    main()
