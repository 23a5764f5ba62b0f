"""The client certificate of a mutual-TLS request (RFC 8705), as it reaches Django one of two
ways:

1. Tessera's own mutual-TLS listener puts it in the WSGI environ as `SSL_CLIENT_CERT` (PEM,
   mod_ssl's name). A client cannot forge an environ key: its headers arrive as HTTP_*.
2. A TLS-terminating proxy forwards it in the header MTLS_CLIENT_CERT_HEADER: URL-encoded PEM
   as nginx's `$ssl_client_escaped_cert` sends it, or RFC 9440 §2 `Client-Cert: :<base64 DER>:`.
   The header is believed only from a peer in TRUSTED_PROXIES (request_context decides which);
   from anyone else it is ignored, and logged once per process (OWASP ASVS 4.0 V1.4: trust
   decisions are not made on client-controlled input).

A malformed certificate is no certificate: the caller refuses where one is needed, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.http import HttpRequest

from apps.core import request_context

log = logging.getLogger("tessera.mtls")

ENVIRON_KEY = "SSL_CLIENT_CERT"
# A certificate is a few KB; a header far longer is not one (nginx caps headers anyway).
MAX_CERTIFICATE_CHARS = 32_768
MAX_INTERMEDIATES = 8  # RFC 5280 paths are short; a longer list is not a client's chain
_CACHED = "_tessera_client_certificate"  # per request: parsed once however often asked
_warned_untrusted = False


def presented_certificate(request: HttpRequest) -> x509.Certificate | None:
    """The certificate the client presented in this request's TLS handshake, or None."""
    if hasattr(request, _CACHED):
        cached: x509.Certificate | None = getattr(request, _CACHED)
        return cached
    certificate = _from_environ(request) or _from_proxy_header(request)
    setattr(request, _CACHED, certificate)
    return certificate


def presented_intermediates(request: HttpRequest) -> list[x509.Certificate]:
    """The intermediate certificates the client sent with its own, as Tessera's listener
    passes them (SSL_CLIENT_CERT_CHAIN_0, _1…, mod_ssl's names; at most MAX_INTERMEDIATES).
    A proxy's header carries the leaf alone: behind one, intermediates belong in the client CA
    bundle. Malformed ones are left out."""
    found = []
    for index in range(MAX_INTERMEDIATES):
        pem = request.META.get(f"{ENVIRON_KEY}_CHAIN_{index}")
        if not isinstance(pem, str):
            break
        certificate = _load_pem(pem)
        if certificate is not None:
            found.append(certificate)
    return found


def thumbprint(certificate: x509.Certificate) -> str:
    """RFC 8705 §3.1 x5t#S256: base64url (no padding) of the SHA-256 of the DER encoding."""
    der = certificate.public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def _from_environ(request: HttpRequest) -> x509.Certificate | None:
    pem = request.META.get(ENVIRON_KEY)
    if not isinstance(pem, str) or not pem.strip():
        return None
    return _load_pem(pem)


def _header_meta_key() -> str:
    return "HTTP_" + settings.MTLS_CLIENT_CERT_HEADER.upper().replace("-", "_")


def _from_proxy_header(request: HttpRequest) -> x509.Certificate | None:
    value = request.META.get(_header_meta_key(), "")
    if not value:
        return None
    if not _from_trusted_proxy(request):
        _warn_untrusted(request)
        return None
    value = value.strip()
    if len(value) > MAX_CERTIFICATE_CHARS:
        return None
    if value.startswith(":") and value.endswith(":") and len(value) > 2:
        return _load_rfc9440(value[1:-1])
    return _load_pem(unquote(value))


def _from_trusted_proxy(request: HttpRequest) -> bool:
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "").strip())
    except ValueError:
        return False
    return request_context.is_trusted_proxy(peer)


def _warn_untrusted(request: HttpRequest) -> None:
    global _warned_untrusted
    if _warned_untrusted:
        return
    _warned_untrusted = True
    log.warning(
        "client certificate header from a peer that is not a trusted proxy: ignored",
        extra={
            "header": settings.MTLS_CLIENT_CERT_HEADER,
            "peer": request.META.get("REMOTE_ADDR", "")[:64],
        },
    )


def _load_pem(pem: str) -> x509.Certificate | None:
    if len(pem) > MAX_CERTIFICATE_CHARS:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None


def _load_rfc9440(encoded: str) -> x509.Certificate | None:
    try:
        der = base64.b64decode(encoded, validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None
